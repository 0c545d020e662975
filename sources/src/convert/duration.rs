//! Gateway API durations (GEP-2257: `1h2m3s500ms`, `10s`, `0s`) in milliseconds.

use super::{ConvertError, Result};

/// Parses a GEP-2257 duration into milliseconds; `field` names it in the error.
pub fn parse_duration_ms(field: &str, text: &str) -> Result<u64> {
    let duration: gateway_api::Duration = text.parse().map_err(|e: String| {
        ConvertError::new(field, format!("{text:?} is not a duration: {e}"))
    })?;
    u64::try_from(duration.as_millis())
        .map_err(|_| ConvertError::new(field, format!("{text:?} is too long")))
}

/// An optional duration.
pub(crate) fn opt_duration_ms(field: &str, text: Option<&str>) -> Result<Option<u64>> {
    text.map(|t| parse_duration_ms(field, t)).transpose()
}
