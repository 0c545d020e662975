//! Status condition types and reasons, spelled exactly as the Gateway API defines
//! them (`Condition.type` / `Condition.reason` in the Gateway and HTTPRoute status of
//! the v1 CRDs; the constants `GatewayConditionType`, `ListenerConditionReason`,
//! `RouteConditionReason`, ... of the API's Go types). The variants are declared in
//! alphabetical order, so sorting conditions sorts them by their spec strings.

use serde::{Deserialize, Serialize};

/// `Condition.type` values Sluice sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    Accepted,
    /// Listener only.
    Conflicted,
    /// Gateway only: some client certificate validation is `AllowInsecureFallback`.
    InsecureFrontendValidationMode,
    /// Route parent: some rules were dropped.
    PartiallyInvalid,
    /// Gateway and listener.
    Programmed,
    /// Listener and route parent.
    ResolvedRefs,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::Conflicted => "Conflicted",
            ConditionType::InsecureFrontendValidationMode => "InsecureFrontendValidationMode",
            ConditionType::PartiallyInvalid => "PartiallyInvalid",
            ConditionType::Programmed => "Programmed",
            ConditionType::ResolvedRefs => "ResolvedRefs",
        }
    }
}

/// `Condition.reason` values Sluice sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    Accepted,
    AddressNotUsable,
    BackendNotFound,
    ConfigurationChanged,
    Conflicted,
    HostnameConflict,
    Invalid,
    InvalidCACertificateKind,
    InvalidCACertificateRef,
    InvalidCertificateRef,
    InvalidKind,
    InvalidParameters,
    InvalidRouteKinds,
    ListenersNotValid,
    NoConflicts,
    NoMatchingListenerHostname,
    NoMatchingParent,
    NoValidCACertificate,
    NotAllowedByListeners,
    PortUnavailable,
    Programmed,
    ProtocolConflict,
    RefNotPermitted,
    ResolvedRefs,
    UnsupportedAddress,
    UnsupportedProtocol,
    UnsupportedValue,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accepted => "Accepted",
            Reason::BackendNotFound => "BackendNotFound",
            Reason::ConfigurationChanged => "ConfigurationChanged",
            Reason::Conflicted => "Conflicted",
            Reason::HostnameConflict => "HostnameConflict",
            Reason::Invalid => "Invalid",
            Reason::InvalidCACertificateKind => "InvalidCACertificateKind",
            Reason::InvalidCACertificateRef => "InvalidCACertificateRef",
            Reason::InvalidCertificateRef => "InvalidCertificateRef",
            Reason::InvalidKind => "InvalidKind",
            Reason::InvalidParameters => "InvalidParameters",
            Reason::InvalidRouteKinds => "InvalidRouteKinds",
            Reason::ListenersNotValid => "ListenersNotValid",
            Reason::NoConflicts => "NoConflicts",
            Reason::NoMatchingListenerHostname => "NoMatchingListenerHostname",
            Reason::NoMatchingParent => "NoMatchingParent",
            Reason::NoValidCACertificate => "NoValidCACertificate",
            Reason::NotAllowedByListeners => "NotAllowedByListeners",
            Reason::PortUnavailable => "PortUnavailable",
            Reason::Programmed => "Programmed",
            Reason::ProtocolConflict => "ProtocolConflict",
            Reason::RefNotPermitted => "RefNotPermitted",
            Reason::ResolvedRefs => "ResolvedRefs",
            Reason::UnsupportedProtocol => "UnsupportedProtocol",
            Reason::UnsupportedValue => "UnsupportedValue",
            Reason::UnsupportedAddress => "UnsupportedAddress",
            Reason::AddressNotUsable => "AddressNotUsable",
        }
    }
}

impl std::fmt::Display for ConditionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    //! The string forms are the spec's, and the declaration order is their text
    //! order (conditions are sorted, and status output must not change order).
    use super::*;

    const TYPES: [ConditionType; 6] = [
        ConditionType::Accepted,
        ConditionType::Conflicted,
        ConditionType::InsecureFrontendValidationMode,
        ConditionType::PartiallyInvalid,
        ConditionType::Programmed,
        ConditionType::ResolvedRefs,
    ];

    const REASONS: [Reason; 27] = [
        Reason::Accepted,
        Reason::AddressNotUsable,
        Reason::BackendNotFound,
        Reason::ConfigurationChanged,
        Reason::Conflicted,
        Reason::HostnameConflict,
        Reason::Invalid,
        Reason::InvalidCACertificateKind,
        Reason::InvalidCACertificateRef,
        Reason::InvalidCertificateRef,
        Reason::InvalidKind,
        Reason::InvalidParameters,
        Reason::InvalidRouteKinds,
        Reason::ListenersNotValid,
        Reason::NoConflicts,
        Reason::NoMatchingListenerHostname,
        Reason::NoMatchingParent,
        Reason::NoValidCACertificate,
        Reason::NotAllowedByListeners,
        Reason::PortUnavailable,
        Reason::Programmed,
        Reason::ProtocolConflict,
        Reason::RefNotPermitted,
        Reason::ResolvedRefs,
        Reason::UnsupportedAddress,
        Reason::UnsupportedProtocol,
        Reason::UnsupportedValue,
    ];

    #[test]
    fn order_is_text_order() {
        for pair in TYPES.windows(2) {
            assert!(pair[0] < pair[1] && pair[0].as_str() < pair[1].as_str());
        }
        for pair in REASONS.windows(2) {
            assert!(pair[0] < pair[1] && pair[0].as_str() < pair[1].as_str());
        }
    }

    /// Each string form is the variant's name, and fits the CRDs' pattern for
    /// `reason` (`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`), which the API server
    /// enforces on a status write.
    #[test]
    fn strings_are_names_and_fit_the_crd_pattern() {
        let fits = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_,:".contains(c))
                && s.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        };
        for r in REASONS {
            assert_eq!(format!("{r:?}"), r.as_str());
            assert!(fits(r.as_str()), "{r:?}");
        }
        for t in TYPES {
            assert_eq!(format!("{t:?}"), t.as_str());
        }
    }
}
