#pragma once
// Counting events per type without a read on the ingest path. Each ingest merges the operand
// {count 1, last_seen now} (records::encode_record(EventTypeStats)) into its type's key of the
// event_types family, a blind write in the ingest's own batch, so it commits or rolls back with
// the event. This merge operator, registered for the family by Store::open, folds the operands
// when RocksDB reads, flushes or compacts the key: counts add up and last_seen keeps the latest.
//
// A stored value that does not decode counts as zero instead of failing: a merge error would
// fail the read, and in a compaction stop the database's writes.

#include <rocksdb/merge_operator.h>

#include <memory>

namespace relay {

std::shared_ptr<rocksdb::MergeOperator> make_event_type_merge_operator();

}  // namespace relay
