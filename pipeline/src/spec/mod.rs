//! The Gateway API's rules as pure functions of records, with no dataflow: each file
//! says which part of the spec it implements, and can be tested alone.
//!
//! - [`listener`]: listener validity and conditions; [`gateway`]: Gateway status;
//! - [`hostname`]: hostname intersection; [`attachment`]: which parentRef attaches to
//!   which listener, and the route parent's `Accepted` condition;
//! - [`references`]: backend references and ReferenceGrants; [`routes`]: route rules
//!   (filters, the weight rule) and `ResolvedRefs`; [`precedence`]: match order in a
//!   virtual host;
//! - [`conditions`]: condition types and reasons, with the spec's spelling.

pub mod attachment;
pub mod backend_tls;
pub mod conditions;
pub mod gateway;
pub mod hostname;
pub mod listener;
pub mod precedence;
pub mod references;
pub mod routes;
pub mod validate;
