#include "storage/subscription_sync.h"

#include <map>
#include <unordered_set>

#include "storage/keys.h"
#include "storage/records.h"

namespace relay::mutations {

namespace {

void put_revision(WriteTxn& txn, std::int64_t revision) {
  std::string value;
  keys::append_u64(value, static_cast<std::uint64_t>(revision));
  txn.put(Family::meta, keys::kMetaSubscriptionsRevision, value);
}

// Stores `sub` unless the stored record is the same bytes; reports it when it changed.
void put_if_changed(WriteTxn& txn, const Subscription& sub, SubscriptionSync& out) {
  const std::string key = keys::subscription_key(sub.id);
  std::string record = records::encode_record(sub);
  const auto stored = txn.get(Family::subscriptions, key);
  if (stored && *stored == record) return;
  if (stored && sub.enabled) {
    if (const auto before = records::decode_subscription(*stored); before && !before->enabled) {
      out.enabled_again.push_back(sub.id);
    }
  }
  txn.put(Family::subscriptions, key, record);
  out.stored.push_back(sub);
}

void remove_if_present(WriteTxn& txn, const std::string& id, SubscriptionSync& out) {
  const std::string key = keys::subscription_key(id);
  if (!txn.get(Family::subscriptions, key)) return;
  txn.del(Family::subscriptions, key);
  out.removed.push_back(id);
}

bool is_subscription_id(const std::string& id) { return keys::parse_id(id, keys::kSubscriptionPrefix).has_value(); }

}  // namespace

Status replace_subscriptions(WriteTxn& txn, const std::vector<Subscription>& all, const std::vector<std::string>& keep,
                             std::int64_t revision, SubscriptionSync& out) {
  out = {};
  std::unordered_set<std::string> wanted(keep.begin(), keep.end());
  for (const auto& sub : all) {
    if (!is_subscription_id(sub.id)) return make_error(Errc::invalid_field, "'" + sub.id + "' is no subscription id");
    wanted.insert(sub.id);
  }
  std::vector<std::string> gone;
  txn.scan(Family::subscriptions, ScanRange{}, [&](std::string_view key, std::string_view) {
    std::string id = keys::format_id(keys::kSubscriptionPrefix, key);
    if (!wanted.contains(id)) gone.push_back(std::move(id));
    return true;
  });
  for (const auto& id : gone) remove_if_present(txn, id, out);
  for (const auto& sub : all) put_if_changed(txn, sub, out);
  put_revision(txn, revision);
  return Ok{};
}

Status apply_subscription_updates(WriteTxn& txn, const std::vector<SubscriptionUpdate>& updates,
                                  std::int64_t revision, SubscriptionSync& out) {
  out = {};
  // Only the last change of an id counts (a put then a delete in one batch is a delete).
  std::map<std::string, const SubscriptionUpdate*> last;
  for (const auto& update : updates) {
    if (!is_subscription_id(update.id) || (update.value && update.value->id != update.id)) {
      return make_error(Errc::invalid_field, "'" + update.id + "' is no subscription id or names another");
    }
    last[update.id] = &update;
  }
  for (const auto& [id, update] : last) {
    if (update->value) {
      put_if_changed(txn, *update->value, out);
    } else {
      remove_if_present(txn, id, out);
    }
  }
  put_revision(txn, revision);
  return Ok{};
}

std::int64_t stored_subscriptions_revision(const Store& store) {
  const auto value = store.get(Family::meta, keys::kMetaSubscriptionsRevision);
  if (!value || value->size() != 8) return 0;
  return static_cast<std::int64_t>(keys::read_u64(*value));
}

}  // namespace relay::mutations
