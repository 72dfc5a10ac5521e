//! Where the Java Kafka client puts a keyed record, written from that client's definition so that
//! tests can check another producer against it: `toPositive(murmur2(key)) % partitions`
//! (`BuiltInPartitioner.partitionForKey` and `Utils.murmur2` in apache/kafka's `clients`). Debezium
//! and Kafka Connect produce through that client.

/// The partition a Java producer picks for `key` on a topic of `partitions` partitions.
pub fn partition(key: &[u8], partitions: i32) -> i32 {
    // Java's `Utils.toPositive`: drops the sign bit rather than taking the absolute value.
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, little-endian 4-byte blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes `int length`; a key is far below 2^31 bytes.
    let mut h = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Java's switch on the remaining byte count falls through from 3 to 1.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Keys and their `Utils.murmur2` as Kafka's own test suite states them: `UtilsTest.testMurmur2` in
/// apache/kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (as of commit
/// f55581dc73953c3509a4702433aeeeddc2970779).
pub const KAFKA_MURMUR2_VECTORS: &[(&[u8], i32)] = &[
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        -58897971,
    ),
    (b"abc", 479470107),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_gives_kafkas_own_test_vectors() {
        for (key, expected) in KAFKA_MURMUR2_VECTORS {
            assert_eq!(murmur2(key), *expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partition_drops_the_sign_bit_of_the_hash() {
        // murmur2("21") = -973932308 = 0xC5F2_F8EC; toPositive keeps 0x45F2_F8EC = 1173551340.
        assert_eq!(partition(b"21", i32::MAX), 1_173_551_340);
        assert_eq!(partition(b"21", 7), 1_173_551_340 % 7);
        // A positive hash is used as it is: 479470107 % 10.
        assert_eq!(partition(b"abc", 10), 7);
    }
}
