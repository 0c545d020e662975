//! Listener certificates: the `tls.certificateRefs` of serving HTTPS listeners and
//! the `caCertificateRefs` of their client validation ⋈ ReferenceGrants (only when
//! cross-namespace) ⋈ Secrets / ConfigMaps, then per listener a
//! [`CertificateVerdict`]: the valid Secrets and CA ConfigMaps by name, and the
//! first failing reference's reason (`InvalidCertificateRef` /
//! `InvalidCACertificateRef`: missing, or its data malformed;
//! `InvalidCertificateRef` / `InvalidCACertificateKind`: not a core Secret /
//! ConfigMap; `RefNotPermitted`: another namespace without a grant).
//!
//! Only referenced objects leave this stage: the valid Secrets a serving listener
//! uses, and its CA bundle (the valid CA ConfigMaps concatenated), per gateway,
//! for the xDS stream (SDS). A Secret or ConfigMap change touches only the
//! listeners that refer to it.

use serde::{Deserialize, Serialize};

use crate::ir::{Reason, SecretIr, SecretMaterial, ca_bundle_name, push_bundle_member};
use crate::model::{ConfigMap, ObjectKey, ReferenceGrant, Secret};
use crate::spec::listener::{CertificateVerdict, ListenerView};
use crate::spec::references::{config_map_grant_entries, secret_grant_entries};

use super::col::{Col, antijoin_named, distinct_named, join_named};
use super::left_join::left_join_named;

/// What a reference is for: a listener certificate (a Secret) or a CA bundle of
/// client certificate validation (a ConfigMap). Certificates sort first: their
/// failures are reported first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Role {
    Certificate,
    ClientCa,
}

impl Role {
    /// The reason for a reference that names a missing or malformed object.
    fn invalid_ref(self) -> Reason {
        match self {
            Role::Certificate => Reason::InvalidCertificateRef,
            Role::ClientCa => Reason::InvalidCACertificateRef,
        }
    }

    /// The reason for a reference to a kind Sluice does not resolve.
    fn invalid_kind(self) -> Reason {
        match self {
            Role::Certificate => Reason::InvalidCertificateRef,
            Role::ClientCa => Reason::InvalidCACertificateKind,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Role::Certificate => "Secret",
            Role::ClientCa => "ConfigMap",
        }
    }
}

/// One certificate or CA reference of one listener.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct CertUse {
    gateway: ObjectKey,
    listener: String,
    role: Role,
    index: usize,
    namespace: String,
    name: String,
    /// `group/kind` as written, when it is not the kind the role resolves.
    invalid_kind: Option<String>,
}

/// How one reference resolved: the object's name, or why not.
type Resolution = Result<String, (Reason, String)>;

fn uses((gateway, view): (ObjectKey, ListenerView)) -> Vec<CertUse> {
    if !view.serves_http {
        return vec![];
    }
    let certificates =
        (view.certificate_refs.iter()).map(|r| (Role::Certificate, r, r.is_secret()));
    let cas = (view.client_validation.iter())
        .flat_map(|c| c.ca_refs.iter())
        .map(|r| (Role::ClientCa, r, r.is_config_map()));
    let mut out = vec![];
    let mut counts = [0usize; 2];
    for (role, r, right_kind) in certificates.chain(cas) {
        let index = &mut counts[role as usize];
        out.push(CertUse {
            gateway: gateway.clone(),
            listener: view.name.clone(),
            role,
            index: *index,
            namespace: r
                .namespace
                .clone()
                .unwrap_or_else(|| gateway.namespace.clone()),
            name: r.name.clone(),
            invalid_kind: (!right_kind).then(|| format!("{}/{}", r.group, r.kind)),
        });
        *index += 1;
    }
    out
}

fn describe(u: &CertUse) -> String {
    let field = match u.role {
        Role::Certificate => "tls.certificateRefs",
        Role::ClientCa => "client validation caCertificateRefs",
    };
    format!("{field}[{}] {}/{}", u.index, u.namespace, u.name)
}

/// The Envoy name of a Secret, and the name of a ConfigMap in a CA bundle's:
/// `namespace/name`.
pub fn secret_name(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

fn resolutions<'s>(
    uses: Col<'s, CertUse>,
    grants: Col<'s, ReferenceGrant>,
    secrets: Col<'s, Secret>,
    config_maps: Col<'s, ConfigMap>,
) -> Col<'s, (CertUse, Resolution)> {
    let invalid_kind = uses.clone().flat_map(|u| {
        let kind = u.invalid_kind.clone()?;
        let msg = format!(
            "{}: kind {kind} is not supported (only core {}s)",
            describe(&u),
            u.role.kind()
        );
        let reason = u.role.invalid_kind();
        Some((u, Err((reason, msg))))
    });
    let valid = uses.filter(|u| u.invalid_kind.is_none());
    let same = valid.clone().filter(|u| u.namespace == u.gateway.namespace);
    let cross = valid
        .filter(|u| u.namespace != u.gateway.namespace)
        .map(|u| {
            (
                (u.namespace.clone(), u.gateway.namespace.clone(), u.role),
                u,
            )
        });
    let grant_entries = grants.flat_map(|g| {
        let secrets = secret_grant_entries(g.clone())
            .into_iter()
            .map(|e| (e, Role::Certificate));
        let cas = config_map_grant_entries(g)
            .into_iter()
            .map(|e| (e, Role::ClientCa));
        (secrets.chain(cas))
            .map(|(((to, from), name), role)| ((to, from, role), name))
            .collect::<Vec<_>>()
    });
    let granted = join_named("certificate grants", cross.clone(), grant_entries)
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
        .map(|u| ((u.role, u.namespace.clone(), u.name.clone()), u));
    let referable = secrets
        .map(|s| ((Role::Certificate, s.key.namespace, s.key.name), s.problem))
        .concat(config_maps.map(|c| ((Role::ClientCa, c.key.namespace, c.key.name), c.problem)));
    let found =
        join_named("referenced objects", permitted.clone(), referable).map(|(_, (u, problem))| {
            let resolution = match problem {
                Some(problem) => {
                    Err((u.role.invalid_ref(), format!("{}: {problem}", describe(&u))))
                }
                None => Ok(secret_name(&ObjectKey::new(&u.namespace, &u.name))),
            };
            (u, resolution)
        });
    // Every object key is held once, so what was not found is missing.
    let missing = permitted
        .map(|(_, u)| u)
        .concat(found.clone().map(|(u, _)| u).negate())
        .map(|u| {
            let msg = format!("{}: {} not found", describe(&u), u.role.kind());
            let reason = u.role.invalid_ref();
            (u, Err((reason, msg)))
        });
    invalid_kind.concat(refused).concat(found).concat(missing)
}

/// The certificate outputs: per serving HTTPS listener its verdict, and per
/// gateway the valid Secrets and CA bundles its listeners use.
pub struct Certificates<'s> {
    /// (gateway, listener name) → verdict.
    pub verdicts: Col<'s, ((ObjectKey, String), CertificateVerdict)>,
    /// gateway → a Secret or CA bundle its proxies need.
    pub secrets: Col<'s, (ObjectKey, SecretIr)>,
}

/// One listener's verdict from its references' resolutions (small group: the
/// listener's own references); `validates_clients`: it has client validation.
fn verdict(validates_clients: bool, facts: &[&(Role, usize, Resolution)]) -> CertificateVerdict {
    let mut facts: Vec<&(Role, usize, Resolution)> = facts.to_vec();
    facts.sort_by_key(|(role, i, _)| (*role, *i));
    let mut verdict = CertificateVerdict {
        client_ca: validates_clients.then(Vec::new),
        ..Default::default()
    };
    let mut failures = vec![];
    for (role, _, r) in facts {
        let names = match role {
            Role::Certificate => &mut verdict.secrets,
            Role::ClientCa => verdict.client_ca.get_or_insert_with(Vec::new),
        };
        match r {
            Ok(name) if !names.contains(name) => names.push(name.clone()),
            Ok(_) => {}
            Err((reason, msg)) => failures.push((*reason, msg.clone())),
        }
    }
    if let Some((reason, _)) = failures.first() {
        let msgs: Vec<String> = failures.iter().map(|(_, m)| m.clone()).collect();
        verdict.problem = Some((*reason, msgs.join("; ")));
    }
    verdict
}

pub fn certificates<'s>(
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    grants: Col<'s, ReferenceGrant>,
    secrets: Col<'s, Secret>,
    config_maps: Col<'s, ConfigMap>,
) -> Certificates<'s> {
    let https = listeners.filter(|(_, v)| v.serves_http && !v.certificate_refs.is_empty());
    let resolved = resolutions(
        https.clone().flat_map(uses),
        grants,
        secrets.clone(),
        config_maps.clone(),
    );
    let facts = resolved.map(|(u, r)| ((u.gateway, u.listener), (u.role, u.index, r)));
    let objects = https.map(|(gw, v)| ((gw, v.name), v.client_validation.is_some()));
    let verdicts = left_join_named(
        "certificate verdict",
        objects,
        facts,
        |_, validates, facts| Some(verdict(*validates, facts)),
    );
    let used = distinct_named(
        "secrets by gateway",
        (verdicts.clone())
            .filter(|(_, v)| v.serves())
            .flat_map(|((gw, _), v)| v.secrets.into_iter().map(move |name| (name, gw.clone()))),
    );
    let by_name = secrets
        .filter(|s| s.problem.is_none())
        .map(|s| (secret_name(&s.key), s));
    let certificates = join_named("served secrets", used, by_name)
        .map(|(name, (gw, s))| (gw, SecretIr::certificate(name, s.cert_chain, s.private_key)));
    // A CA bundle per distinct list of valid CA ConfigMaps a gateway's listeners
    // use: its members joined to their ConfigMaps, concatenated in order, each
    // ending in a newline (the group of the reduce is one bundle's members).
    let bundles = distinct_named(
        "ca bundles by gateway",
        (verdicts.clone())
            .filter(|(_, v)| v.serves())
            .flat_map(|((gw, _), v)| v.client_ca.map(|names| (gw, names))),
    );
    let members = bundles.flat_map(|(gw, names)| {
        (names.iter().enumerate())
            .map(|(i, name)| (name.clone(), (gw.clone(), names.clone(), i)))
            .collect::<Vec<_>>()
    });
    let config_maps = config_maps
        .filter(|c| c.problem.is_none())
        .map(|c| (secret_name(&c.key), c.ca_bundle));
    let cas = join_named("ca bundle members", members, config_maps)
        .map(|(_, ((gw, names, i), pem))| ((gw, names), (i, pem)))
        .reduce_named("ca bundle", |(_, names), members, out| {
            // Complete bundles only: a member not (yet) found leaves no bundle.
            let present: Vec<&(usize, String)> = (members.iter())
                .filter(|(_, n)| *n > 0)
                .map(|(m, _)| *m)
                .collect();
            if present.len() == names.len() {
                let mut pem = String::new();
                for (_, member) in present {
                    push_bundle_member(&mut pem, member);
                }
                out.push((pem, 1));
            }
        })
        .map(|((gw, names), pem)| {
            let material = SecretMaterial::TrustedCa(pem);
            let name = ca_bundle_name(&names);
            (gw, SecretIr { name, material })
        });
    Certificates {
        verdicts,
        secrets: certificates.concat(cas),
    }
}
