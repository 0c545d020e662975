//! HTTPRoute filters, at rule level and at backend level.
//!
//! The two levels have the same schema but distinct generated Rust types, so one
//! macro writes the conversion for each. Filter types the model has no record for
//! (`ExtensionRef`, `CORS`, ...) become [`Filter::Unsupported`], kept as data for
//! status reporting.

use gateway_api::httproutes as gw;
use sluice_pipeline::model::{self, BackendRef, Filter, HeaderModifier, Mirror, PathModifier};

use super::{ConvertError, Result, opt_port};

/// Redirect status codes the schema allows; 302 is the default.
const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// Header name/value pairs in the order written; of names equal but for case, the
/// first counts (header names are case-insensitive).
fn headers<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    let owned = pairs.map(|(n, v)| (n.clone(), v.clone()));
    super::first_per_name(owned, |(name, _)| name, true)
}

/// `set`, `add` and `remove` of a header modifier, in the order written.
macro_rules! header_modifier {
    ($m:expr) => {
        HeaderModifier {
            set: headers($m.set.iter().flatten().map(|h| (&h.name, &h.value))),
            add: headers($m.add.iter().flatten().map(|h| (&h.name, &h.value))),
            remove: $m.remove.clone().unwrap_or_default(),
        }
    };
}

macro_rules! filter_conversion {
    ($name:ident, $filter:ty, $ty:ident, $scheme:ident, $redirect_path:ident, $rewrite_path:ident) => {
        pub(crate) fn $name(f: &$filter) -> Result<Filter> {
            use gw::$ty as T;
            Ok(match f.r#type {
                T::RequestHeaderModifier => {
                    let m = required("requestHeaderModifier", &f.request_header_modifier)?;
                    Filter::RequestHeaders(header_modifier!(m))
                }
                T::ResponseHeaderModifier => {
                    let m = required("responseHeaderModifier", &f.response_header_modifier)?;
                    Filter::ResponseHeaders(header_modifier!(m))
                }
                T::RequestRedirect => {
                    let r = required("requestRedirect", &f.request_redirect)?;
                    let path = r.path.as_ref().map(|p| {
                        use gw::$redirect_path as P;
                        let full = matches!(p.r#type, P::ReplaceFullPath);
                        path_modifier(full, &p.replace_full_path, &p.replace_prefix_match)
                    });
                    let redirect = sluice_pipeline::model::Redirect {
                        scheme: r.scheme.as_ref().map(|s| match s {
                            gw::$scheme::Http => "http".to_owned(),
                            gw::$scheme::Https => "https".to_owned(),
                        }),
                        hostname: r.hostname.clone(),
                        path: path
                            .transpose()
                            .map_err(|e| e.within("requestRedirect.path"))?,
                        port: opt_port("requestRedirect.port", r.port)?,
                        status_code: status_code(r.status_code)?,
                    };
                    Filter::Redirect(redirect)
                }
                T::UrlRewrite => {
                    let r = required("urlRewrite", &f.url_rewrite)?;
                    let path = r.path.as_ref().map(|p| {
                        use gw::$rewrite_path as P;
                        let full = matches!(p.r#type, P::ReplaceFullPath);
                        path_modifier(full, &p.replace_full_path, &p.replace_prefix_match)
                    });
                    let path = path.transpose().map_err(|e| e.within("urlRewrite.path"))?;
                    Filter::UrlRewrite(sluice_pipeline::model::UrlRewrite {
                        hostname: r.hostname.clone(),
                        path,
                    })
                }
                T::RequestMirror => {
                    let m = required("requestMirror", &f.request_mirror)?;
                    let b = &m.backend_ref;
                    let backend = BackendRef {
                        group: b.group.clone().unwrap_or_default(),
                        kind: b
                            .kind
                            .clone()
                            .unwrap_or_else(|| model::kinds::SERVICE.to_owned()),
                        namespace: b.namespace.clone(),
                        name: b.name.clone(),
                        port: opt_port("requestMirror.backendRef.port", b.port)?,
                        weight: 1,
                        filters: vec![],
                    };
                    let fraction = m.fraction.as_ref().map(|f| (f.numerator, f.denominator));
                    let fraction = mirror_fraction(m.percent, fraction)
                        .map_err(|e| e.within("requestMirror"))?;
                    Filter::Mirror(Mirror { backend, fraction })
                }
                T::ExtensionRef => Filter::Unsupported("ExtensionRef".to_owned()),
                T::Cors => Filter::Unsupported("CORS".to_owned()),
            })
        }
    };
}

filter_conversion!(
    rule_filter,
    gw::HttpRouteRulesFilters,
    HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersRequestRedirectScheme,
    HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersUrlRewritePathType
);

filter_conversion!(
    backend_filter,
    gw::HttpRouteRulesBackendRefsFilters,
    HttpRouteRulesBackendRefsFiltersType,
    HttpRouteRulesBackendRefsFiltersRequestRedirectScheme,
    HttpRouteRulesBackendRefsFiltersRequestRedirectPathType,
    HttpRouteRulesBackendRefsFiltersUrlRewritePathType
);

/// The settings of a filter, which its `type` makes required.
fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| ConvertError::new(field, "required by the filter's type"))
}

fn path_modifier(
    full: bool,
    replace_full_path: &Option<String>,
    replace_prefix_match: &Option<String>,
) -> Result<PathModifier> {
    if full {
        let path = required("replaceFullPath", replace_full_path)?;
        Ok(PathModifier::ReplaceFullPath(path.clone()))
    } else {
        let prefix = required("replacePrefixMatch", replace_prefix_match)?;
        Ok(PathModifier::ReplacePrefixMatch(prefix.clone()))
    }
}

/// `requestRedirect.statusCode`, 302 when absent.
fn status_code(code: Option<i64>) -> Result<u16> {
    let code = code.unwrap_or(302);
    u16::try_from(code)
        .ok()
        .filter(|c| REDIRECT_CODES.contains(c))
        .ok_or_else(|| {
            ConvertError::new(
                "requestRedirect.statusCode",
                format!("{code} is not one of 301, 302, 303, 307, 308"),
            )
        })
}

/// The mirrored fraction from `percent` (out of 100) or `fraction` (numerator,
/// denominator defaulting to 100); `None` mirrors every request.
pub(crate) fn mirror_fraction(
    percent: Option<i32>,
    fraction: Option<(i32, Option<i32>)>,
) -> Result<Option<(u32, u32)>> {
    let (field, numerator, denominator) = match (percent, fraction) {
        (None, None) => return Ok(None),
        (Some(p), None) => ("percent", p, 100),
        (None, Some((n, d))) => ("fraction", n, d.unwrap_or(100)),
        (Some(_), Some(_)) => {
            return Err(ConvertError::new(
                "percent",
                "only one of percent and fraction may be set",
            ));
        }
    };
    match (u32::try_from(numerator), u32::try_from(denominator)) {
        (Ok(n), Ok(d)) if d > 0 && n <= d => Ok(Some((n, d))),
        _ => Err(ConvertError::new(
            field,
            format!("{numerator}/{denominator} is not a fraction between 0 and 1"),
        )),
    }
}
