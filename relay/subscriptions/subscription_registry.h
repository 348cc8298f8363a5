#pragma once
// The current subscriptions, held in memory because every ingest matches against them, indexed
// so that matching an event costs the same whatever the number of other tenants' subscriptions
// (spec section 6): tenant -> bucket, and per bucket the exact types (hashed), the prefix
// patterns (hashed by prefix: a type looks up each of its dot-ended prefixes) and the `*`
// subscriptions. Filters are compiled here, once per change, never at ingest.
//
// Matching rules (decided here, spec section 6 "Tenants"):
// - an event with tenant T reaches the enabled subscriptions whose tenant is T and those without
//   a tenant (platform-wide); an event without a tenant reaches only subscriptions without one
//   (a tenant-scoped subscription receives only its tenant's events, and a tenant-less event is
//   no tenant's);
// - and whose event_types match the type (pattern_matches: `*` does not match relay's own
//   "relay." types, only a pattern that names them does), and whose filter holds on
//   {type, payload}. The
//   payload is indexed at most once per event (one FilterSubject per call), and only if a
//   candidate's filter reads it;
// - a stored filter that no longer compiles (a record from a newer relay) matches nothing:
//   filters exist to keep events away from a subscriber, so a broken one fails closed.
//
// Threads: changes (upsert, erase) come from the commit pipeline's writer thread once a change
// is durable, in commit order, and edit the indexes in place under an exclusive lock (cost: the
// subscription's own patterns, not the number of subscriptions); ingest matching (writer
// thread too) and the event loop's readers (scheduler, gauges, API) take a shared lock for the
// length of one call. A subscription is handed out as shared_ptr<const Subscription>: a reader
// keeps the version it found, whatever changes after.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "relay/model/subscription.h"

namespace relay {

class PayloadFilter;

// What matching reads of an event. The views must outlive the call.
struct RoutedEvent {
  std::string_view tenant;   // empty: none
  std::string_view type;
  std::string_view payload;  // compact JSON text
};

class SubscriptionRegistry {
 public:
  explicit SubscriptionRegistry(std::vector<Subscription> initial);
  ~SubscriptionRegistry();
  SubscriptionRegistry(const SubscriptionRegistry&) = delete;
  SubscriptionRegistry& operator=(const SubscriptionRegistry&) = delete;

  std::shared_ptr<const Subscription> find(std::string_view id) const;
  std::size_t size() const;
  // Visits every subscription, in no particular order, under the shared lock: `visit` must be
  // short and must not call the registry's changes (upsert, erase).
  void for_each(const std::function<void(const std::shared_ptr<const Subscription>&)>& visit) const;

  // The enabled subscriptions that receive the event (rules above), in id order, so fan-out
  // order is reproducible.
  std::vector<std::shared_ptr<const Subscription>> matching(const RoutedEvent& event) const;

  // One page of the listing, in id order: the subscriptions whose id sorts after `after` (empty:
  // from the first), only those of `tenant` when it is not empty. `more`: a next page exists.
  struct Page {
    std::vector<std::shared_ptr<const Subscription>> items;
    bool more = false;
  };
  Page page(std::string_view tenant, std::string_view after, std::size_t limit) const;

  void upsert(const Subscription& subscription);
  void erase(std::string_view id);

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <typename T>
  using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

  struct Entry {
    std::string id;  // stable while the entry lives: the ordered views point into it
    std::shared_ptr<const Subscription> subscription;
    std::shared_ptr<const PayloadFilter> filter;  // null: no filter
    bool unmatchable = false;                     // its stored filter does not compile
  };
  // One tenant's subscriptions (or the tenant-less ones). Every list is in id order.
  struct Bucket {
    StringMap<std::vector<Entry*>> exact;     // by type
    StringMap<std::vector<Entry*>> prefixes;  // "meeting." for "meeting.*"
    std::vector<Entry*> any;                  // "*"
    std::map<std::string_view, Entry*> members;
  };

  void index(Entry& entry);
  void unindex(Entry& entry);

  mutable std::shared_mutex mutex_;
  StringMap<std::unique_ptr<Entry>> by_id_;
  std::map<std::string_view, Entry*> ordered_;  // keys view Entry::id; the listing's order
  StringMap<Bucket> tenants_;                   // "" holds the tenant-less subscriptions
};

}  // namespace relay
