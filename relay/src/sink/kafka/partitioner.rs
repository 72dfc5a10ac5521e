//! The partitioner the Kafka sink asks librdkafka for: the Java client's, so that the relay puts a key
//! on the same partition as Java producers, Kafka Connect and Debezium before it.
//!
//! librdkafka's own default, `consistent_random`, hashes keys with CRC32: a topic first written by a
//! Java producer would see each aggregate move to another partition when the relay took over, and
//! per-aggregate order would break there. `murmur2_random` is Java's `murmur2(key) & 0x7fffffff %
//! partitions`; records without a key go to a random partition, as with Java's sticky partitioner.

/// librdkafka's `partitioner` value, set before `kafka.properties` so that a user can still choose
/// another one.
pub(super) const PARTITIONER: &str = "murmur2_random";

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::ptr;

    use harness::java_partitioner::{self, KAFKA_MURMUR2_VECTORS};
    use rdkafka::bindings::rd_kafka_msg_partitioner_murmur2_random;

    /// The partition librdkafka's `murmur2_random` gives `key`, called as its producer calls it.
    fn librdkafka_partition(key: &[u8], partitions: i32) -> i32 {
        // SAFETY: for a non-null key the function only hashes `key[..len]`; the topic and opaque
        // pointers are read only for null keys (the random branch), which this never passes.
        unsafe {
            rd_kafka_msg_partitioner_murmur2_random(
                ptr::null(),
                key.as_ptr().cast::<c_void>(),
                key.len(),
                partitions,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        }
    }

    /// With `i32::MAX` partitions the partition is the hash with its sign bit dropped, so Kafka's own
    /// murmur2 vectors check librdkafka's hash directly.
    #[test]
    fn librdkafka_hashes_kafkas_murmur2_test_vectors_as_java_does() {
        for (key, hash) in KAFKA_MURMUR2_VECTORS {
            assert_eq!(
                librdkafka_partition(key, i32::MAX),
                hash & 0x7fff_ffff,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn librdkafka_places_keys_where_the_java_client_does() {
        let keys = (0..2000).map(|i| format!("order-{i}")).chain(
            // Every tail length, and bytes above 0x7f (Java's `byte` is signed; its `& 0xff` undoes it).
            (0..64).map(|len| "é".repeat(len / 2) + &"x".repeat(len % 2)),
        );
        for key in keys {
            for partitions in [1, 2, 3, 6, 12, 100, 1000] {
                assert_eq!(
                    librdkafka_partition(key.as_bytes(), partitions),
                    java_partitioner::partition(key.as_bytes(), partitions),
                    "{key:?} on {partitions} partitions"
                );
            }
        }
    }
}
