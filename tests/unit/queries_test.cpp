// Queries: listings newest first, filters, and cursor pagination over a real RocksDB.

#include "storage/queries.h"

#include <gtest/gtest.h>

#include <set>

#include "storage/mutations.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace queries_test {

using Targets = std::vector<std::shared_ptr<const Subscription>>;

constexpr UnixMillis kStart = 1'760'000'000'000;

std::vector<std::string> ids_of(const std::vector<Delivery>& items) {
  std::vector<std::string> out;
  for (const auto& d : items) out.push_back(d.id);
  return out;
}

class QueriesTest : public test::StoreFixture {
 protected:
  QueriesTest() : ids_(clock_, store_->instance_id()) {}

  std::shared_ptr<const Subscription> subscription() {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids_.next(keys::kSubscriptionPrefix);
    return sub;
  }

  // Ingests one event at the current clock time, then advances the clock by 1s.
  mutations::IngestedEvent ingest(const Targets& targets, const std::string& type = "meeting.completed",
                                  const std::string& tenant = "") {
    mutations::NewEvent input{"", type, std::make_shared<const std::string>("{}"), tenant};
    mutations::IngestedEvent out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::ingest(txn, input, targets, ids_, clock_.now_ms(), out); }).ok());
    clock_.advance(1'000);
    return out;
  }

  // Makes a delivery dead at the current clock time, then advances the clock by 1s.
  void kill(const std::string& id) {
    Attempt a;
    a.started_at = clock_.now_ms();
    a.outcome = AttemptOutcome::http_4xx;
    const Delivery attempted = queries::delivery(*store_, id).value();
    Delivery out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) {
                  ordering_queue::Advance advance;
                  return mutations::record_attempt(txn, attempted, a, {DeliveryState::dead, 0}, nullptr, out, advance);
                }).ok());
    clock_.advance(1'000);
  }

  void succeed(const std::string& id) {
    Attempt a;
    a.started_at = clock_.now_ms();
    a.outcome = AttemptOutcome::success;
    const Delivery attempted = queries::delivery(*store_, id).value();
    Delivery out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) {
                  ordering_queue::Advance advance;
                  return mutations::record_attempt(txn, attempted, a, {DeliveryState::succeeded, 0}, nullptr, out, advance);
                }).ok());
  }

  // Follows next_cursor until the last page; every page at most `limit` items.
  template <typename List>
  std::vector<std::string> all_pages(List list, queries::DeliveryFilter filter, int* pages = nullptr) {
    std::vector<std::string> out;
    for (int page_count = 1; page_count < 1'000; ++page_count) {
      auto page = list(*store_, filter);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) break;
      EXPECT_LE(page->items.size(), filter.limit);
      for (const auto& d : page->items) out.push_back(d.id);
      if (page->next_cursor.empty()) {
        if (pages) *pages = page_count;
        break;
      }
      filter.cursor = page->next_cursor;
    }
    return out;
  }

  ManualClock clock_{kStart};
  keys::IdGenerator ids_;
};

TEST_F(QueriesTest, PointLookupsRejectMalformedAndForeignIds) {
  const auto out = ingest({subscription()});
  EXPECT_TRUE(queries::event(*store_, out.event.id));
  EXPECT_TRUE(queries::delivery(*store_, out.deliveries[0].id));
  EXPECT_FALSE(queries::event(*store_, out.deliveries[0].id));     // a delivery id is no event id
  EXPECT_FALSE(queries::delivery(*store_, out.event.id));
  EXPECT_FALSE(queries::event(*store_, "evt_nothex"));
  EXPECT_FALSE(queries::event(*store_, ""));
  EXPECT_FALSE(queries::delivery(*store_, ids_.next(keys::kDeliveryPrefix)));
  EXPECT_TRUE(queries::deliveries_of_event(*store_, "garbage").empty());
  EXPECT_TRUE(queries::attempts(*store_, "garbage").empty());
}

TEST_F(QueriesTest, ListDeliveriesIsNewestFirst) {
  const auto sub = subscription();
  std::vector<std::string> made;
  for (int i = 0; i < 5; ++i) made.push_back(ingest({sub}).deliveries[0].id);
  auto page = queries::list_deliveries(*store_, {});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->items), std::vector<std::string>(made.rbegin(), made.rend()));
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_F(QueriesTest, ListDeliveriesFilters) {
  const auto a = subscription();
  const auto b = subscription();
  const auto e1 = ingest({a, b}, "meeting.started");            // t0
  const auto e2 = ingest({a}, "meeting.completed");             // t0+1s
  const auto e3 = ingest({b}, "meeting.completed");             // t0+2s
  succeed(e2.deliveries[0].id);

  auto list = [&](queries::DeliveryFilter f) {
    auto page = queries::list_deliveries(*store_, f);
    EXPECT_TRUE(page.ok());
    return page.ok() ? ids_of(page->items) : std::vector<std::string>{};
  };
  queries::DeliveryFilter f;
  f.subscription_id = a->id;
  EXPECT_EQ(list(f), (std::vector<std::string>{e2.deliveries[0].id, e1.deliveries[0].id}));

  f = {};
  f.event_type = "meeting.completed";
  EXPECT_EQ(list(f), (std::vector<std::string>{e3.deliveries[0].id, e2.deliveries[0].id}));

  f = {};
  f.state = DeliveryState::succeeded;
  EXPECT_EQ(list(f), (std::vector<std::string>{e2.deliveries[0].id}));
  f.state = DeliveryState::pending;
  EXPECT_EQ(list(f).size(), 3u);
  f.state = DeliveryState::dead;
  EXPECT_TRUE(list(f).empty());

  f = {};
  f.event_id = e1.event.id;
  EXPECT_EQ(list(f), (std::vector<std::string>{e1.deliveries[1].id, e1.deliveries[0].id}));
  f.subscription_id = b->id;
  EXPECT_EQ(list(f), (std::vector<std::string>{e1.deliveries[1].id}));

  // Time bounds are on creation time: since inclusive, until exclusive.
  f = {};
  f.since = kStart + 1'000;
  EXPECT_EQ(list(f), (std::vector<std::string>{e3.deliveries[0].id, e2.deliveries[0].id}));
  f.until = kStart + 2'000;
  EXPECT_EQ(list(f), (std::vector<std::string>{e2.deliveries[0].id}));
  f.since = 0;
  EXPECT_EQ(list(f), (std::vector<std::string>{e2.deliveries[0].id, e1.deliveries[1].id, e1.deliveries[0].id}));

  f = {};
  f.subscription_id = a->id;
  f.event_type = "meeting.started";
  f.state = DeliveryState::pending;
  EXPECT_EQ(list(f), (std::vector<std::string>{e1.deliveries[0].id}));
}

TEST_F(QueriesTest, ListsFilterByTheEventsTenantExactly) {
  const auto sub = subscription();
  const auto acme1 = ingest({sub}, "a", "acme");
  const auto globex = ingest({sub}, "a", "globex");
  const auto none = ingest({sub}, "a");
  const auto acme2 = ingest({sub}, "a", "acme");
  const auto acme_prefixed = ingest({sub}, "a", "acme2");
  queries::DeliveryFilter f;
  f.tenant = "acme";
  f.limit = 1;
  EXPECT_EQ(all_pages(queries::list_deliveries, f),
            (std::vector<std::string>{acme2.deliveries[0].id, acme1.deliveries[0].id}));
  f.event_id = acme1.event.id;
  EXPECT_EQ(all_pages(queries::list_deliveries, f), (std::vector<std::string>{acme1.deliveries[0].id}));
  f.event_id = globex.event.id;
  EXPECT_TRUE(all_pages(queries::list_deliveries, f).empty());

  for (const auto* e : {&acme1, &globex, &none, &acme2, &acme_prefixed}) kill(e->deliveries[0].id);
  f = {};
  f.tenant = "acme";
  EXPECT_EQ(all_pages(queries::list_dead, f), (std::vector<std::string>{acme2.deliveries[0].id, acme1.deliveries[0].id}));
  f.tenant = "globex";
  EXPECT_EQ(all_pages(queries::list_dead, f), (std::vector<std::string>{globex.deliveries[0].id}));
  f.tenant = "initech";
  EXPECT_TRUE(all_pages(queries::list_dead, f).empty());
  EXPECT_EQ(none.deliveries[0].tenant, "");
}

TEST_F(QueriesTest, ListDeliveriesByEventHonoursTimeBounds) {
  // The event's index answers event_id queries; the other filters still apply to it.
  const auto sub = subscription();
  const auto event = ingest({sub});
  std::vector<Delivery> redelivered;
  ASSERT_TRUE(commit([&](WriteTxn& txn) -> Status {
                redelivered = mutations::add_deliveries(txn, event.event, {sub}, ids_, clock_.now_ms());
                return Ok{};
              }).ok());
  queries::DeliveryFilter f;
  f.event_id = event.event.id;
  f.since = clock_.now_ms();
  auto page = queries::list_deliveries(*store_, f);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->items), (std::vector<std::string>{redelivered[0].id}));
}

TEST_F(QueriesTest, ListDeliveriesByEventPaginates) {
  // An event redelivered many times has more deliveries than one page holds.
  const auto sub = subscription();
  const auto event = ingest({sub});
  std::vector<std::string> made{event.deliveries[0].id};
  for (int i = 0; i < 4; ++i) {
    std::vector<Delivery> added;
    ASSERT_TRUE(commit([&](WriteTxn& txn) -> Status {
                  added = mutations::add_deliveries(txn, event.event, {sub}, ids_, clock_.now_ms());
                  return Ok{};
                }).ok());
    made.push_back(added[0].id);
    clock_.advance(1'000);
  }
  queries::DeliveryFilter f;
  f.event_id = event.event.id;
  f.limit = 2;
  EXPECT_EQ(all_pages(queries::list_deliveries, f), std::vector<std::string>(made.rbegin(), made.rend()));
}

TEST_F(QueriesTest, ListDeliveriesPaginatesWithACursor) {
  const auto sub = subscription();
  const auto other = subscription();
  std::vector<std::string> made;
  for (int i = 0; i < 7; ++i) {
    made.push_back(ingest({sub}).deliveries[0].id);
    ingest({other});
  }
  queries::DeliveryFilter f;
  f.subscription_id = sub->id;
  f.limit = 3;
  int pages = 0;
  EXPECT_EQ(all_pages(queries::list_deliveries, f, &pages), std::vector<std::string>(made.rbegin(), made.rend()));
  EXPECT_EQ(pages, 3);

  // The cursor composes with the time bounds.
  f.since = kStart + 4'000;  // from the third pair on
  f.limit = 2;
  EXPECT_EQ(all_pages(queries::list_deliveries, f), std::vector<std::string>(made.rbegin(), made.rend() - 2));

  f = {};
  f.limit = 1;
  EXPECT_EQ(all_pages(queries::list_deliveries, f).size(), 14u);
}

TEST_F(QueriesTest, ListDeliveriesRejectsABadCursor) {
  ingest({subscription()});
  for (const std::string& cursor : std::vector<std::string>{"nope", "evt_00000000000000000000000000000000", "dlv_123"}) {
    queries::DeliveryFilter f;
    f.cursor = cursor;
    auto page = queries::list_deliveries(*store_, f);
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.error().code, Errc::invalid_field);
  }
}

TEST_F(QueriesTest, ListDeadIsMostRecentlyDeadFirstWithFiltersAndCursor) {
  const auto a = subscription();
  const auto b = subscription();
  std::vector<mutations::IngestedEvent> events;
  for (int i = 0; i < 6; ++i) events.push_back(ingest({i % 2 == 0 ? a : b}, i < 3 ? "x.early" : "x.late"));
  // Die in reverse creation order: death order differs from id order.
  std::vector<std::string> dead_order;
  for (int i = 5; i >= 0; --i) {
    kill(events[i].deliveries[0].id);
    dead_order.push_back(events[i].deliveries[0].id);
  }
  const std::vector<std::string> newest_dead_first(dead_order.rbegin(), dead_order.rend());
  ingest({a});  // a pending one is not listed

  auto page = queries::list_dead(*store_, {});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->items), newest_dead_first);
  EXPECT_TRUE(page->next_cursor.empty());

  queries::DeliveryFilter f;
  f.limit = 4;
  int pages = 0;
  EXPECT_EQ(all_pages(queries::list_dead, f, &pages), newest_dead_first);
  EXPECT_EQ(pages, 2);
  f.limit = 1;
  EXPECT_EQ(all_pages(queries::list_dead, f), newest_dead_first);

  f = {};
  f.subscription_id = a->id;
  f.limit = 1;
  EXPECT_EQ(all_pages(queries::list_dead, f),
            (std::vector<std::string>{events[0].deliveries[0].id, events[2].deliveries[0].id,
                                      events[4].deliveries[0].id}));

  f = {};
  f.event_type = "x.late";
  EXPECT_EQ(all_pages(queries::list_dead, f),
            (std::vector<std::string>{events[3].deliveries[0].id, events[4].deliveries[0].id,
                                      events[5].deliveries[0].id}));

  // since/until bound the time of death. The first death was at kStart + 6s (six ingests).
  f = {};
  f.since = kStart + 8'000;
  f.until = kStart + 10'000;
  EXPECT_EQ(all_pages(queries::list_dead, f),
            (std::vector<std::string>{events[2].deliveries[0].id, events[3].deliveries[0].id}));
}

TEST_F(QueriesTest, ListDeadRejectsBadCursors) {
  const auto e = ingest({subscription()});
  kill(e.deliveries[0].id);
  const std::string dlv = e.deliveries[0].id;
  for (const std::string& cursor : std::vector<std::string>{std::string("nope"), std::string("123"), std::string("123."),
                                   "." + dlv, "-5." + dlv, "12x." + dlv, "123.evt_" + dlv.substr(4),
                                   "123.dlv_zz"}) {
    queries::DeliveryFilter f;
    f.cursor = cursor;
    auto page = queries::list_dead(*store_, f);
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.error().code, Errc::invalid_field);
  }
}

TEST_F(QueriesTest, SubscriptionsEventTypesAndKeyCounts) {
  Subscription sub = *subscription();
  sub.url = "https://a.example/";
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());
  const auto subs = queries::subscriptions(*store_);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].id, sub.id);
  EXPECT_EQ(subs[0].url, "https://a.example/");

  ingest({}, "t.one");
  ingest({}, "t.two");
  ingest({}, "t.two");
  const auto types = queries::event_types(*store_);
  ASSERT_EQ(types.size(), 2u);
  EXPECT_EQ(types[1].type, "t.two");
  EXPECT_EQ(types[1].count, 2u);

  EXPECT_EQ(queries::count_keys(*store_, Family::events), 3u);
  EXPECT_EQ(queries::count_keys(*store_, Family::completed), 3u);
  EXPECT_EQ(queries::count_keys(*store_, Family::deliveries), 0u);
}

}  // namespace queries_test
}  // namespace relay
