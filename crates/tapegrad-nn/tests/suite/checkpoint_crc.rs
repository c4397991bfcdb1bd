//! The checkpoint format is unchanged by the switch to `crc32fast`: a file written by the
//! hand-written CRC-32 (fixtures/checkpoint_v1_f32.tgc) still loads, and re-encoding its
//! contents gives the same bytes.

use tapegrad_nn::{checkpoint, Activation, Dense, Module, Sequential};
use tapegrad_nn::{SeedableRng, StdRng};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoint_v1_f32.tgc");

fn model() -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(0);
    Sequential::new()
        .add(Dense::new(3, 4, &mut rng).unwrap().with_activation(Activation::Relu))
        .add(Dense::new(4, 2, &mut rng).unwrap())
}

#[test]
fn a_checkpoint_written_before_crc32fast_still_loads_bit_for_bit() {
    let mut m = model();
    checkpoint::load(&mut m, FIXTURE).unwrap();
    let p = m.parameters();
    assert_eq!(
        p[0].1.to_vec(),
        [
            -0.5073155,
            -0.41484022,
            0.10901189,
            0.48472834,
            0.5344392,
            0.6725843,
            0.2584219,
            -0.5720948,
            -0.54695094,
            -0.1162014,
            0.16591418,
            0.6317401
        ]
    );
    assert_eq!(p[1].1.to_vec(), [0.0; 4]);
    assert_eq!(
        p[2].1.to_vec(),
        [
            -0.22278166,
            0.94617486,
            0.06271553,
            0.8309281,
            -0.27411866,
            0.51413894,
            0.13134956,
            0.79380107
        ]
    );
    let old = std::fs::read(FIXTURE).unwrap();
    assert_eq!(
        checkpoint::to_bytes(&m).unwrap(),
        old,
        "the format or the checksum changed"
    );
}

#[test]
fn the_checksum_is_the_ieee_crc32_of_the_contents() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let (content, tail) = bytes.split_at(bytes.len() - 4);
    // Reference value of the standard check input "123456789" for CRC-32/IEEE.
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert_eq!(u32::from_le_bytes(tail.try_into().unwrap()), crc32fast::hash(content));
    let mut flipped = bytes.clone();
    flipped[20] ^= 0x10;
    let err = checkpoint::decode::<f32>(&flipped).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}
