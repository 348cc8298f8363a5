#include "storage/event_type_merge.h"

#include <algorithm>

#include "storage/records.h"

namespace relay {

namespace {

class EventTypeMergeOperator final : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    EventTypeStats total;
    if (in.existing_value != nullptr) add(total, *in.existing_value);
    for (const rocksdb::Slice& operand : in.operand_list) add(total, operand);
    out->new_value = records::encode_record(total);
    return true;
  }

  // Operands have the form of values, so any run of them folds into one.
  bool PartialMergeMulti(const rocksdb::Slice& /*key*/, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    EventTypeStats total;
    for (const rocksdb::Slice& operand : operands) add(total, operand);
    *new_value = records::encode_record(total);
    return true;
  }

  const char* Name() const override { return "relay.EventTypeCount"; }

 private:
  static void add(EventTypeStats& total, const rocksdb::Slice& value) {
    const auto stats = records::decode_event_type_stats("", value.ToStringView());
    if (!stats) return;
    total.count += stats->count;
    total.last_seen = std::max(total.last_seen, stats->last_seen);
  }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> make_event_type_merge_operator() {
  return std::make_shared<EventTypeMergeOperator>();
}

}  // namespace relay
