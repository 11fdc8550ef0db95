//! # ramanujan-color
//!
//! The three rule colours and their polarities.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which rule stream derived a fact: RED rewrites forward, BLUE backward, GREEN verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Color {
    /// Forward rewrites: associativity, commutativity, expansion.
    Red,
    /// Backward rewrites: factoring, cancellation, clean-up.
    Blue,
    /// Identity laws, used to verify.
    Green,
}

/// The sign a colour carries: RED positive, BLUE negative, GREEN neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Polarity {
    /// RED.
    Positive,
    /// BLUE.
    Negative,
    /// GREEN.
    Neutral,
}

impl Color {
    /// All colours, in priority order (RED > BLUE > GREEN).
    pub const ALL: [Color; 3] = [Color::Red, Color::Blue, Color::Green];

    /// The colour's polarity.
    pub fn polarity(self) -> Polarity {
        match self {
            Color::Red => Polarity::Positive,
            Color::Blue => Polarity::Negative,
            Color::Green => Polarity::Neutral,
        }
    }

    /// Upper-case name, as on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "RED",
            Color::Blue => "BLUE",
            Color::Green => "GREEN",
        }
    }

    fn priority(self) -> u8 {
        match self {
            Color::Red => 2,
            Color::Blue => 1,
            Color::Green => 0,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Color {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "RED" => Ok(Color::Red),
            "BLUE" => Ok(Color::Blue),
            "GREEN" => Ok(Color::Green),
            _ => Err(format!("unknown colour `{s}`: expected RED, BLUE or GREEN")),
        }
    }
}

/// The colour that wins when two derivations meet: RED > BLUE > GREEN.
pub fn merge_colors(a: Color, b: Color) -> Color {
    if a.priority() >= b.priority() { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_red_blue_green() {
        assert_eq!(merge_colors(Color::Green, Color::Red), Color::Red);
        assert_eq!(merge_colors(Color::Blue, Color::Green), Color::Blue);
        assert_eq!(merge_colors(Color::Blue, Color::Red), Color::Red);
    }
}
