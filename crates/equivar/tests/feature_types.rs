//! The text form of feature types: it round-trips for every kind of representation, gives the
//! right channel counts, and malformed strings are errors that say what is wrong.

use equivar::field::{FeatureType, ReprKind};
use equivar::group::{Irrep, PlanarGroup};

#[test]
fn the_text_form_round_trips_for_every_kind() {
    let cases = [
        (
            "C8: 8x regular + 2x irrep(1) + 4x trivial",
            8 * 8 + 2 * 2 + 4,
        ),
        (
            "D4: 16x regular + quotient(C2) + irrep(1,1) + irrep(0,2)",
            16 * 8 + 4 + 2 + 1,
        ),
        (
            "SO(2): 4x irrep(1) + 2x regular(3) + trivial",
            4 * 2 + 2 * 7 + 1,
        ),
        (
            "O(2): 8x regular(2) + 2x irrep(1,3) + irrep(1,0)",
            8 * 10 + 2 * 2 + 1,
        ),
        ("C1: 3x trivial", 3),
        ("D16: regular + quotient(D8) + quotient(C16)", 32 + 2 + 2),
        ("C12: irrep(6) + irrep(0) + regular(2)", 1 + 1 + 5),
    ];
    for (text, channels) in cases {
        let t: FeatureType = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.to_string(), text, "canonical form");
        assert_eq!(t.to_string().parse::<FeatureType>().unwrap(), t);
        assert_eq!(t.channels(), channels, "{text}");
        assert_eq!(t.representation().unwrap().dim(), channels, "{text}");
    }
    // Spaces, case and the G-CNN names are accepted; printing is canonical.
    let t: FeatureType = " p4m :2X Regular+ IRREP( 1 , 2 )".parse().unwrap();
    assert_eq!(t.to_string(), "D4: 2x regular + irrep(1,2)");
    assert_eq!(
        t.terms,
        vec![
            (2, ReprKind::Regular),
            (1, ReprKind::Irrep(Irrep::new(1, 2)))
        ]
    );
    assert_eq!(t.group, PlanarGroup::Dihedral(4));
    assert_eq!(
        "so2: trivial".parse::<FeatureType>().unwrap().group,
        PlanarGroup::So2
    );
}

#[test]
fn malformed_strings_are_errors_that_say_what_is_wrong() {
    let cases = [
        ("C8 8x regular", "GROUP:"),
        ("C0: regular", "not a group"),
        ("Q8: regular", "not a group"),
        ("C8: 8x", "not a representation"),
        ("C8: regular +", "empty term"),
        ("C8: 3x irrep(5)", "irrep(5)"),
        ("D4: irrep(1)", "irrep(j,k)"),
        ("C4: irrep(1,1)", "no mirrors"),
        ("D4: irrep(2,1)", "j is 0 or 1"),
        ("SO(2): regular", "regular(L)"),
        ("C8: quotient(C3)", "subgroup"),
        ("C8: 0x trivial", "no channels"),
        ("C8: regular(x)", "whole number"),
        ("C8: 99999999999999999999999x trivial", "too large"),
        ("C8: irrep()", "whole number"),
        ("C8: sideways", "not a representation"),
    ];
    for (text, needle) in cases {
        let err = text.parse::<FeatureType>().unwrap_err().to_string();
        assert!(
            err.contains(needle) && err.contains("not a feature type"),
            "{text}: `{needle}` not in: {err}"
        );
    }
}
