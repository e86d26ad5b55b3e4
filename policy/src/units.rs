//! Parsing and printing of the document's scalar notations: amounts, durations,
//! addresses, selectors. Exact integer arithmetic only: a cap must mean exactly what the
//! operator wrote.

use alloy_primitives::{Address, U256};

/// Longest amount or duration text accepted; far more than any 78-digit U256 needs.
const MAX_TEXT_LEN: usize = 100;

/// Longest window or delay: 31 days. Bounds how long velocity counters keep a signature.
pub const MAX_WINDOW_SECS: u64 = 31 * 86_400;

/// `10^exp`; exp ≤ 18 here, so it cannot overflow.
fn pow10(exp: u32) -> U256 {
    U256::from(10u64).pow(U256::from(exp))
}

/// Decimal digits only, into a U256, refusing overflow.
fn parse_decimal(digits: &str) -> Result<U256, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected decimal digits".into());
    }
    let ten = U256::from(10u64);
    digits.bytes().try_fold(U256::ZERO, |acc, b| {
        acc.checked_mul(ten)
            .and_then(|v| v.checked_add(U256::from(b - b'0')))
            .ok_or_else(|| "does not fit in 256 bits".to_string())
    })
}

/// `0x` hex, at most 64 digits.
fn parse_hex(digits: &str) -> Result<U256, String> {
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 1 to 64 hex digits after 0x".into());
    }
    U256::from_str_radix(digits, 16).map_err(|e| e.to_string())
}

/// A plain integer: decimal or `0x` hex. Token amounts use this (their decimals vary by
/// token, so ether/gwei units would mislead).
pub fn parse_integer(text: &str) -> Result<U256, String> {
    if text.len() > MAX_TEXT_LEN {
        return Err("too long".into());
    }
    match text.strip_prefix("0x") {
        Some(hex) => parse_hex(hex),
        None => parse_decimal(text),
    }
}

/// A native amount in wei: `"1000"`, `"0x3e8"`, `"1 ether"`, `"0.5 ether"`, `"30 gwei"`,
/// `"7 wei"`. Units are `wei`, `gwei`, `ether` (alias `eth`), case-insensitive, optionally
/// separated by spaces. A fraction may have at most as many digits as the unit has
/// decimals.
pub fn parse_wei(text: &str) -> Result<U256, String> {
    if text.len() > MAX_TEXT_LEN {
        return Err("too long".into());
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return parse_hex(hex);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim_start_matches(' ');
    let decimals: u32 = match unit.to_ascii_lowercase().as_str() {
        "" | "wei" => 0,
        "gwei" => 9,
        "ether" | "eth" => 18,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (expected wei, gwei or ether)"
            ));
        }
    };
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (number, ""),
    };
    if number.contains('.') && frac.is_empty() {
        return Err("expected digits after the decimal point".into());
    }
    let frac_len = u32::try_from(frac.len()).unwrap_or(u32::MAX);
    if frac_len > decimals {
        let unit = if unit.is_empty() { "wei" } else { unit };
        return Err(format!(
            "{frac_len} decimals, more than {unit} allows ({decimals})"
        ));
    }
    let int = parse_decimal(int)?;
    let frac = if frac.is_empty() {
        U256::ZERO
    } else {
        parse_decimal(frac)?
    };
    int.checked_mul(pow10(decimals))
        .and_then(|v| v.checked_add(frac.checked_mul(pow10(decimals - frac_len))?))
        .ok_or_else(|| "does not fit in 256 bits".into())
}

/// `value / 10^decimals` written exactly, without trailing zeros: `1.5`, `2`, `0.000001`.
pub fn format_units(value: U256, decimals: u32) -> String {
    let base = pow10(decimals);
    let (int, frac) = (value / base, value % base);
    if frac.is_zero() {
        return int.to_string();
    }
    let width = decimals as usize;
    let frac = format!("{frac:0>width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// A wei amount for reasons: `1.5 ETH`.
pub fn format_eth(value: U256) -> String {
    format!("{} ETH", format_units(value, 18))
}

/// A fee for reasons: `30 gwei`.
pub fn format_gwei(value: U256) -> String {
    format!("{} gwei", format_units(value, 9))
}

/// The canonical text of a wei amount: one deterministic notation per value, readable for
/// whoever reviews the policy: ether from 0.001 ether up, gwei from 100000 wei up, else wei.
pub fn canonical_wei(value: U256) -> String {
    if value >= pow10(15) {
        format!("{} ether", format_units(value, 18))
    } else if value >= U256::from(100_000u64) {
        format!("{} gwei", format_units(value, 9))
    } else if value.is_zero() {
        "0".into()
    } else {
        format!("{value} wei")
    }
}

/// A duration: whole seconds (`86400`, `"86400"`) or a number with a unit `s`, `m`, `h`,
/// `d` (`"90s"`, `"15m"`, `"24h"`, `"7d"`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    if text.len() > MAX_TEXT_LEN {
        return Err("too long".into());
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim_start_matches(' ') {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?} (expected s, m, h or d)")),
    };
    if number.is_empty() {
        return Err("expected a whole number".into());
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| "too large".into())
}

/// The canonical text of a duration: the largest unit that divides it exactly, preferring
/// hours to a single day (`"24h"`, `"7d"`, `"90m"`, `"45s"`).
pub fn canonical_duration(secs: u64) -> String {
    if secs > 86_400 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs.is_multiple_of(3_600) {
        format!("{}h", secs / 3_600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// An address: `0x` and 40 hex digits. All-lowercase and all-uppercase are accepted as
/// they carry no checksum; mixed case must be a correct EIP-55 checksum, since a wrong one
/// means a mistyped address.
pub fn parse_address(text: &str) -> Result<Address, &'static str> {
    let hex_part = text
        .strip_prefix("0x")
        .ok_or("expected 0x followed by 40 hex digits")?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 0x followed by 40 hex digits");
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| "expected 40 hex digits")?;
    let address = Address::from(bytes);
    let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && address.to_checksum(None) != text {
        return Err("mixed-case address with an invalid EIP-55 checksum");
    }
    Ok(address)
}

/// A function selector: `0x` and 8 hex digits.
pub fn parse_selector(text: &str) -> Result<[u8; 4], String> {
    let hex_part = text
        .strip_prefix("0x")
        .filter(|h| h.len() == 8)
        .ok_or_else(|| format!("selector {text:?}: expected 0x followed by 8 hex digits"))?;
    let mut out = [0u8; 4];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| format!("selector {text:?}: expected 0x followed by 8 hex digits"))?;
    Ok(out)
}

/// A selector as `0x` and lowercase hex.
pub fn format_selector(selector: [u8; 4]) -> String {
    format!("0x{}", hex::encode(selector))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ether(n: u64) -> U256 {
        U256::from(n) * pow10(18)
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_wei("1 ether").unwrap(), ether(1));
        assert_eq!(parse_wei("0.5 ether").unwrap(), ether(1) / U256::from(2));
        assert_eq!(parse_wei("1.5ETH").unwrap(), ether(3) / U256::from(2));
        assert_eq!(parse_wei("30 gwei").unwrap(), U256::from(30_000_000_000u64));
        assert_eq!(parse_wei("1000").unwrap(), U256::from(1000));
        assert_eq!(parse_wei("7 wei").unwrap(), U256::from(7));
        assert_eq!(parse_wei("0x3e8").unwrap(), U256::from(1000));
        assert_eq!(
            parse_wei("0.000000000000000001 ether").unwrap(),
            U256::from(1)
        );
        assert_eq!(
            parse_wei(&format!("0x{}", "f".repeat(64))).unwrap(),
            U256::MAX
        );
        assert_eq!(parse_wei(&U256::MAX.to_string()).unwrap(), U256::MAX);
    }

    #[test]
    fn bad_amounts_are_refused() {
        assert_eq!(
            parse_wei("0.0000000000000000001 ether").unwrap_err(),
            "19 decimals, more than ether allows (18)"
        );
        assert_eq!(
            parse_wei("1.5").unwrap_err(),
            "1 decimals, more than wei allows (0)"
        );
        assert!(parse_wei("0.1234567891 gwei").is_err());
        assert!(parse_wei("1 finney").is_err());
        assert!(parse_wei("").is_err());
        assert!(parse_wei("1.").is_err());
        assert!(parse_wei(".5 ether").is_err());
        assert!(parse_wei("-1").is_err());
        assert!(parse_wei("1e18").is_err());
        assert!(parse_wei("0x").is_err());
        assert!(parse_wei("0x1g").is_err());
        assert!(parse_wei(&format!("0x1{}", "0".repeat(64))).is_err());
        // 2^256 overflows, as does a large ether amount.
        assert!(
            parse_wei(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
            )
            .is_err()
        );
        assert!(
            parse_wei("115792089237316195423570985008687907853269984665640564039458 ether")
                .is_err()
        );
        assert!(parse_wei(&"1".repeat(101)).is_err());
    }

    #[test]
    fn integers_refuse_units() {
        assert_eq!(parse_integer("1000000").unwrap(), U256::from(1_000_000));
        assert_eq!(parse_integer("0xff").unwrap(), U256::from(255));
        assert!(parse_integer("1 ether").is_err());
        assert!(parse_integer("1.5").is_err());
    }

    #[test]
    fn canonical_amounts_round_trip() {
        for text in [
            "1 ether",
            "0.5 ether",
            "30 gwei",
            "12345 wei",
            "0",
            "0.001 ether",
        ] {
            let v = parse_wei(text).unwrap();
            assert_eq!(canonical_wei(v), text);
            assert_eq!(parse_wei(&canonical_wei(v)).unwrap(), v);
        }
        for v in [U256::MAX, U256::from(99_999), U256::from(100_001), ether(5)] {
            assert_eq!(parse_wei(&canonical_wei(v)).unwrap(), v);
        }
        assert_eq!(format_eth(ether(3) / U256::from(2)), "1.5 ETH");
        assert_eq!(format_eth(U256::ZERO), "0 ETH");
        assert_eq!(format_gwei(U256::from(30_500_000_000u64)), "30.5 gwei");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("90 s").unwrap(), 90);
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        for secs in [1, 59, 60, 90, 3600, 86_400, 172_800, 604_800, 90_000] {
            assert_eq!(parse_duration(&canonical_duration(secs)).unwrap(), secs);
        }
        assert_eq!(canonical_duration(86_400), "24h");
        assert_eq!(canonical_duration(604_800), "7d");
    }

    #[test]
    fn addresses_check_eip55() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(parse_address(good).is_ok());
        assert!(parse_address(&good.to_lowercase()).is_ok());
        assert!(parse_address(&format!("0x{}", good[2..].to_uppercase())).is_ok());
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert_eq!(
            parse_address(bad).unwrap_err(),
            "mixed-case address with an invalid EIP-55 checksum"
        );
        assert!(parse_address("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err());
        assert!(parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe").is_err());
        assert!(parse_address("0xzzAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err());
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector("0xa9059cbb").unwrap(),
            [0xa9, 0x05, 0x9c, 0xbb]
        );
        assert_eq!(format_selector([0xa9, 0x05, 0x9c, 0xbb]), "0xa9059cbb");
        assert!(parse_selector("a9059cbb").is_err());
        assert!(parse_selector("0xa9059c").is_err());
    }
}
