//! Listener certificates: the `tls.certificateRefs` of serving HTTPS listeners ⋈
//! ReferenceGrants (only when cross-namespace) ⋈ Secrets, then per listener a
//! [`CertificateVerdict`]: the valid Secrets by name, and the first failing
//! reference's reason (`InvalidCertificateRef`: not a core Secret, missing, or its
//! data malformed; `RefNotPermitted`: another namespace without a grant).
//!
//! Only referenced Secrets leave this stage: the valid ones a serving listener
//! uses, per gateway, for the xDS stream (SDS). A Secret change touches only the
//! listeners that refer to it.

use serde::{Deserialize, Serialize};

use crate::ir::{Reason, SecretIr};
use crate::model::{ObjectKey, ReferenceGrant, Secret};
use crate::spec::listener::{CertificateVerdict, ListenerView};
use crate::spec::references::secret_grant_entries;

use super::col::{Col, antijoin_named, distinct_named, join_named};
use super::left_join::left_join_named;

/// One certificate reference of one listener.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct CertUse {
    gateway: ObjectKey,
    listener: String,
    index: usize,
    namespace: String,
    name: String,
    /// `group/kind` as written, when it is not a core Secret.
    invalid_kind: Option<String>,
}

/// How one reference resolved: the Secret's name, or why not.
type Resolution = Result<String, (Reason, String)>;

fn uses((gateway, view): (ObjectKey, ListenerView)) -> Vec<CertUse> {
    if !view.serves_http {
        return vec![];
    }
    (view.certificate_refs.iter().enumerate())
        .map(|(index, r)| CertUse {
            gateway: gateway.clone(),
            listener: view.name.clone(),
            index,
            namespace: r
                .namespace
                .clone()
                .unwrap_or_else(|| gateway.namespace.clone()),
            name: r.name.clone(),
            invalid_kind: (!r.is_secret()).then(|| format!("{}/{}", r.group, r.kind)),
        })
        .collect()
}

fn describe(u: &CertUse) -> String {
    format!(
        "tls.certificateRefs[{}] {}/{}",
        u.index, u.namespace, u.name
    )
}

/// The Envoy name of a Secret: `namespace/name`.
pub fn secret_name(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

fn resolutions<'s>(
    uses: Col<'s, CertUse>,
    grants: Col<'s, ReferenceGrant>,
    secrets: Col<'s, Secret>,
) -> Col<'s, (CertUse, Resolution)> {
    let invalid_kind = uses.clone().flat_map(|u| {
        let kind = u.invalid_kind.clone()?;
        let msg = format!(
            "{}: kind {kind} is not supported (only core Secrets)",
            describe(&u)
        );
        Some((u, Err((Reason::InvalidCertificateRef, msg))))
    });
    let valid = uses.filter(|u| u.invalid_kind.is_none());
    let same = valid.clone().filter(|u| u.namespace == u.gateway.namespace);
    let cross = valid
        .filter(|u| u.namespace != u.gateway.namespace)
        .map(|u| ((u.namespace.clone(), u.gateway.namespace.clone()), u));
    let granted = join_named(
        "certificate grants",
        cross.clone(),
        grants.flat_map(secret_grant_entries),
    )
    .flat_map(|(_, (u, name))| (name.is_none() || name.as_ref() == Some(&u.name)).then_some(u));
    let granted = distinct_named("granted certificate references", granted);
    let refused = antijoin_named(
        "refused certificate references",
        cross.map(|(_, u)| (u, ())),
        granted.clone(),
    )
    .map(|(u, ())| {
        let msg = format!(
            "{}: no ReferenceGrant in {} lets Gateways of {} use it",
            describe(&u),
            u.namespace,
            u.gateway.namespace
        );
        (u, Err((Reason::RefNotPermitted, msg)))
    });
    let permitted = same
        .concat(granted)
        .map(|u| ((u.namespace.clone(), u.name.clone()), u));
    let secrets = secrets.map(|s| ((s.key.namespace.clone(), s.key.name.clone()), s));
    let found = join_named("certificate secrets", permitted.clone(), secrets).map(|(_, (u, s))| {
        let resolution = match &s.problem {
            Some(problem) => Err((
                Reason::InvalidCertificateRef,
                format!("{}: {problem}", describe(&u)),
            )),
            None => Ok(secret_name(&s.key)),
        };
        (u, resolution)
    });
    // Every Secret key is held once, so what was not found is missing.
    let missing = permitted
        .map(|(_, u)| u)
        .concat(found.clone().map(|(u, _)| u).negate())
        .map(|u| {
            let msg = format!("{}: Secret not found", describe(&u));
            (u, Err((Reason::InvalidCertificateRef, msg)))
        });
    invalid_kind.concat(refused).concat(found).concat(missing)
}

/// The certificate outputs: per serving HTTPS listener its verdict, and per
/// gateway the valid Secrets its listeners use.
pub struct Certificates<'s> {
    /// (gateway, listener name) → verdict.
    pub verdicts: Col<'s, ((ObjectKey, String), CertificateVerdict)>,
    /// gateway → a Secret its proxies need.
    pub secrets: Col<'s, (ObjectKey, SecretIr)>,
}

pub fn certificates<'s>(
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    grants: Col<'s, ReferenceGrant>,
    secrets: Col<'s, Secret>,
) -> Certificates<'s> {
    let https = listeners.filter(|(_, v)| v.serves_http && !v.certificate_refs.is_empty());
    let resolved = resolutions(https.clone().flat_map(uses), grants, secrets.clone());
    let facts = resolved.map(|(u, r)| ((u.gateway, u.listener), (u.index, r)));
    let objects = https.map(|(gw, v)| ((gw, v.name), ()));
    let verdicts = left_join_named("certificate verdict", objects, facts, |_, (), facts| {
        let mut facts: Vec<&(usize, Resolution)> = facts.to_vec();
        facts.sort_by_key(|(i, _)| *i);
        let mut verdict = CertificateVerdict::default();
        let mut failures = vec![];
        for (_, r) in facts {
            match r {
                Ok(name) if !verdict.secrets.contains(name) => verdict.secrets.push(name.clone()),
                Ok(_) => {}
                Err((reason, msg)) => failures.push((*reason, msg.clone())),
            }
        }
        if let Some((reason, _)) = failures.first() {
            let msgs: Vec<String> = failures.iter().map(|(_, m)| m.clone()).collect();
            verdict.problem = Some((*reason, msgs.join("; ")));
        }
        Some(verdict)
    });
    let used = distinct_named(
        "secrets by gateway",
        verdicts
            .clone()
            .flat_map(|((gw, _), v)| v.secrets.into_iter().map(move |name| (name, gw.clone()))),
    );
    let by_name = secrets
        .filter(|s| s.problem.is_none())
        .map(|s| (secret_name(&s.key), s));
    let secrets = join_named("served secrets", used, by_name).map(|(name, (gw, s))| {
        (
            gw,
            SecretIr {
                name,
                cert_chain: s.cert_chain,
                private_key: s.private_key,
            },
        )
    });
    Certificates { verdicts, secrets }
}
