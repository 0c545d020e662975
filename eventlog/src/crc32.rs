//! CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial and final value
//! 0xFFFFFFFF), the checksum of zlib, gzip and PNG.

/// The CRC-32 of `bytes` (`crc32fast`: the same checksum, with the CPU's carry-less
/// multiply where it has one; a table-driven byte loop was a tenth of replay time).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    //! The standard check values of CRC-32/ISO-HDLC.
    use super::crc32;

    #[test]
    fn check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }
}
