// Merging one list call's pages from several shards (relay/cluster/list_merge.h): order, limit,
// the frontier of a shard whose scan budget ran out, cursors in the single-node form, missing
// shards, and, over random shard contents, that paging through the merged list returns every
// item exactly once and in order.

#include "relay/cluster/list_merge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "relay/core/time.h"
#include "storage/keys.h"

namespace relay::cluster {
namespace list_merge_test {

using nlohmann::json;

constexpr UnixMillis kT = 1'760'000'000'000;

// An id as shard `instance` makes it at `ms` with counter `n` (storage/keys.h's layout).
std::string make_id(std::string_view prefix, UnixMillis ms, std::uint32_t instance, std::uint64_t n) {
  std::string raw;
  for (int i = 5; i >= 0; --i) raw.push_back(static_cast<char>((ms >> (8 * i)) & 0xff));
  keys::append_u32(raw, instance);
  for (int i = 5; i >= 0; --i) raw.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return keys::format_id(prefix, raw);
}

json delivery(std::string id) { return {{"id", std::move(id)}, {"state", "pending"}}; }
json dead(std::string id, UnixMillis dead_at) {
  return {{"id", std::move(id)}, {"state", "dead"}, {"completed_at", format_time(dead_at)}};
}

std::vector<std::string> ids_of(const std::vector<json>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.at("id").get<std::string>());
  return out;
}

ShardPage page(std::string shard, std::vector<json> items, std::string next_cursor = "") {
  return ShardPage{std::move(shard), true, std::move(items), std::move(next_cursor)};
}

TEST(ListMergeTest, DeliveriesOfEveryShardComeNewestFirstUpToTheLimit) {
  const std::string a1 = make_id("dlv_", kT + 1, 1, 1), a2 = make_id("dlv_", kT + 5, 1, 2);
  const std::string b1 = make_id("dlv_", kT + 3, 2, 1), b2 = make_id("dlv_", kT + 5, 2, 9);
  const std::string c1 = make_id("dlv_", kT + 4, 3, 1);
  std::vector<ShardPage> pages{page("a", {delivery(a2), delivery(a1)}), page("b", {delivery(b2), delivery(b1)}),
                               page("c", {delivery(c1)})};
  const MergedPage all = merge_pages(ListKind::deliveries, pages, 10);
  EXPECT_EQ(ids_of(all.items), (std::vector<std::string>{b2, a2, c1, b1, a1}));  // same ms: the id decides
  EXPECT_EQ(all.next_cursor, "");
  EXPECT_TRUE(all.incomplete.empty());

  const MergedPage first = merge_pages(ListKind::deliveries, pages, 2);
  EXPECT_EQ(ids_of(first.items), (std::vector<std::string>{b2, a2}));
  EXPECT_EQ(first.next_cursor, a2);  // a single node's cursor: the last item's id
}

TEST(ListMergeTest, ItemsBelowTheFrontierOfAnUnfinishedShardWaitForTheNextPage) {
  // Shard b's scan budget ran out at `frontier` (a key it examined that did not match): what
  // lies below it on b is unknown, so a's older items must wait even though the page has room.
  const std::string a_new = make_id("dlv_", kT + 9, 1, 1), a_old = make_id("dlv_", kT + 2, 1, 2);
  const std::string b_new = make_id("dlv_", kT + 8, 2, 1), frontier = make_id("dlv_", kT + 6, 2, 5);
  const MergedPage merged = merge_pages(
      ListKind::deliveries, {page("a", {delivery(a_new), delivery(a_old)}), page("b", {delivery(b_new)}, frontier)}, 10);
  EXPECT_EQ(ids_of(merged.items), (std::vector<std::string>{a_new, b_new}));
  EXPECT_EQ(merged.next_cursor, frontier);

  // A shard whose page is full sets a frontier at its last item alike.
  const MergedPage full = merge_pages(
      ListKind::deliveries, {page("a", {delivery(a_new), delivery(a_old)}), page("b", {delivery(b_new)}, b_new)}, 10);
  EXPECT_EQ(ids_of(full.items), (std::vector<std::string>{a_new, b_new}));
  EXPECT_EQ(full.next_cursor, b_new);
}

TEST(ListMergeTest, AnEmptyPageCanStillCarryTheFrontierOn) {
  const std::string frontier = make_id("dlv_", kT + 6, 2, 5);
  const MergedPage merged = merge_pages(ListKind::deliveries,
                                        {page("a", {delivery(make_id("dlv_", kT + 1, 1, 1))}), page("b", {}, frontier)}, 5);
  EXPECT_TRUE(merged.items.empty());
  EXPECT_EQ(merged.next_cursor, frontier);
}

TEST(ListMergeTest, DeadLettersComeMostRecentlyDeadFirstWithTheQueuesCursor) {
  // Time of death, not creation, orders the queue: the oldest delivery died last.
  const std::string old_id = make_id("dlv_", kT, 1, 1), new_id = make_id("dlv_", kT + 100, 2, 1);
  const std::string tie_low = make_id("dlv_", kT + 50, 1, 2), tie_high = make_id("dlv_", kT + 50, 2, 2);
  std::vector<ShardPage> pages{page("a", {dead(old_id, kT + 900), dead(tie_low, kT + 500)}),
                               page("b", {dead(tie_high, kT + 500), dead(new_id, kT + 200)})};
  const MergedPage merged = merge_pages(ListKind::dead_letters, pages, 3);
  EXPECT_EQ(ids_of(merged.items), (std::vector<std::string>{old_id, tie_high, tie_low}));
  EXPECT_EQ(merged.next_cursor, std::to_string(kT + 500) + "." + tie_low);
  EXPECT_EQ(cursor_key(ListKind::dead_letters, merged.next_cursor), item_key(ListKind::dead_letters, merged.items[2]));
}

TEST(ListMergeTest, JobsComeNewestFirst) {
  const std::string j1 = make_id("job_", kT + 1, 1, 1), j2 = make_id("job_", kT + 2, 2, 1);
  const std::string j3 = make_id("job_", kT + 3, 1, 2);
  const MergedPage merged =
      merge_pages(ListKind::jobs, {page("a", {json{{"id", j3}}, json{{"id", j1}}}), page("b", {json{{"id", j2}}})}, 2);
  EXPECT_EQ(ids_of(merged.items), (std::vector<std::string>{j3, j2}));
  EXPECT_EQ(merged.next_cursor, j2);
}

TEST(ListMergeTest, ShardsWithoutAnAnswerAreListedAsIncomplete) {
  const std::string a1 = make_id("dlv_", kT + 1, 1, 1);
  std::vector<ShardPage> pages{page("a", {delivery(a1)}), ShardPage::missing("b"), ShardPage::missing("c")};
  const MergedPage merged = merge_pages(ListKind::deliveries, pages, 10);
  EXPECT_EQ(ids_of(merged.items), std::vector<std::string>{a1});
  EXPECT_EQ(merged.incomplete, (std::vector<std::string>{"b", "c"}));
  const json body = to_json(merged);
  EXPECT_EQ(body["incomplete"], json::array({"b", "c"}));
  EXPECT_TRUE(body["next_cursor"].is_null());

  pages.resize(1);
  EXPECT_FALSE(to_json(merge_pages(ListKind::deliveries, pages, 10)).contains("incomplete"));
}

TEST(ListMergeTest, AnItemAnsweredTwiceIsListedOnce) {
  const std::string a1 = make_id("dlv_", kT + 1, 1, 1);
  const MergedPage merged =
      merge_pages(ListKind::deliveries, {page("a", {delivery(a1)}), page("b", {delivery(a1)})}, 10);
  EXPECT_EQ(ids_of(merged.items), std::vector<std::string>{a1});
}

TEST(ListMergeTest, PagesThatAreNotTheListsAreNotAnswers) {
  const std::string id = make_id("dlv_", kT, 1, 1);
  const std::string good = json{{"items", {delivery(id)}}, {"next_cursor", id}}.dump();
  const ShardPage parsed = parse_page(ListKind::deliveries, "a", good);
  EXPECT_TRUE(parsed.answered);
  EXPECT_EQ(parsed.shard, "a");
  EXPECT_EQ(parsed.next_cursor, id);
  EXPECT_EQ(parsed.items.size(), 1u);
  EXPECT_TRUE(parse_page(ListKind::deliveries, "a", R"({"items": [], "next_cursor": null})").answered);

  for (const std::string& bad : {std::string("not json"), std::string(R"({"items": []})"),
                                std::string(R"({"items": {}, "next_cursor": null})"),
                                json{{"items", {delivery(id)}}, {"next_cursor", "dlv_nope"}}.dump(),
                                json{{"items", {json{{"id", 7}}}}, {"next_cursor", nullptr}}.dump(),
                                // a job id in a delivery list, a delivery without a time of death in the DLQ
                                json{{"items", {delivery(make_id("job_", kT, 1, 1))}}, {"next_cursor", nullptr}}.dump()}) {
    EXPECT_FALSE(parse_page(ListKind::deliveries, "a", bad).answered) << bad;
  }
  EXPECT_FALSE(parse_page(ListKind::dead_letters, "a", good).answered);
  EXPECT_FALSE(cursor_key(ListKind::dead_letters, "12.dlv_nope"));
  EXPECT_FALSE(cursor_key(ListKind::dead_letters, "x." + id));
  EXPECT_FALSE(cursor_key(ListKind::dead_letters, "." + id));
  EXPECT_FALSE(cursor_key(ListKind::dead_letters, id));
  EXPECT_TRUE(cursor_key(ListKind::dead_letters, "0." + id));
}

TEST(ListMergeTest, EventTypesAreSummedByTypeWithTheLatestLastSeen) {
  const auto item = [](std::string type, std::uint64_t count, UnixMillis seen) {
    return json{{"type", std::move(type)}, {"count", count}, {"last_seen", format_time(seen)}};
  };
  const json a = {{"items", {item("meeting.completed", 3, kT + 10), item("meeting.started", 1, kT)}}};
  const json b = {{"items", {item("calendar.update", 2, kT + 1), item("meeting.completed", 4, kT + 5)}}};
  const json merged = merge_event_types({parse_event_types("a", a.dump()), parse_event_types("b", b.dump()),
                                         parse_event_types("c", "garbage")});
  EXPECT_EQ(merged["items"], json::array({item("calendar.update", 2, kT + 1), item("meeting.completed", 7, kT + 10),
                                          item("meeting.started", 1, kT)}));
  EXPECT_EQ(merged["incomplete"], json::array({"c"}));
  EXPECT_FALSE(merge_event_types({parse_event_types("a", a.dump())}).contains("incomplete"));
  EXPECT_FALSE(parse_event_types("a", R"({"items": [{"type": "x", "count": -1, "last_seen": "2024-10-01T00:00:00.000Z"}]})").answered);
}

// A shard's list as storage/queries.cpp pages it: keys newest first; a page examines keys below
// the cursor until it holds `limit` items or has examined `budget` keys, and then carries the
// cursor of the last key examined. Keys that do not match the filter are examined, not listed.
struct SimulatedShard {
  std::string name;
  struct Record {
    std::string key;
    std::string cursor;
    json item;
    bool matches = true;
  };
  std::vector<Record> records;  // newest first
  std::size_t budget = 20'000;

  ShardPage list(ListKind kind, std::size_t limit, const std::string& cursor) const {
    ShardPage page{name, true, {}, ""};
    const std::optional<std::string> upper = cursor.empty() ? std::nullopt : cursor_key(kind, cursor);
    std::size_t visited = 0;
    const Record* last = nullptr;
    for (const Record& record : records) {
      if (upper && record.key >= *upper) continue;
      last = &record;
      if (record.matches) page.items.push_back(record.item);
      if (!(page.items.size() < limit && ++visited < budget)) break;
    }
    if (last != nullptr && (page.items.size() >= limit || visited >= budget)) page.next_cursor = last->cursor;
    return page;
  }
};

std::vector<SimulatedShard> random_shards(ListKind kind, std::mt19937& random, std::size_t shard_count) {
  std::vector<SimulatedShard> shards(shard_count);
  std::uniform_int_distribution<int> records(0, 60), time(0, 40), percent(0, 99), budget(1, 12);
  const std::string_view prefix = kind == ListKind::jobs ? "job_" : "dlv_";
  for (std::size_t s = 0; s < shard_count; ++s) {
    SimulatedShard& shard = shards[s];
    shard.name = "shard-" + std::to_string(s);
    // Some shards page through everything at once, others run out of budget often.
    if (percent(random) < 60) shard.budget = static_cast<std::size_t>(budget(random));
    const int n = records(random);
    for (int i = 0; i < n; ++i) {
      // Few distinct milliseconds, so that ids and deaths tie across shards.
      const std::string id = make_id(prefix, kT + time(random), static_cast<std::uint32_t>(s + 1), static_cast<std::uint64_t>(i));
      SimulatedShard::Record record;
      if (kind == ListKind::dead_letters) {
        const UnixMillis dead_at = kT + 1000 + time(random);
        record.item = dead(id, dead_at);
        record.cursor = std::to_string(dead_at) + "." + id;
      } else {
        record.item = delivery(id);
        record.cursor = id;
      }
      record.key = *item_key(kind, record.item);
      record.matches = percent(random) < 70;
      shard.records.push_back(std::move(record));
    }
    std::sort(shard.records.begin(), shard.records.end(), [](const auto& a, const auto& b) { return a.key > b.key; });
  }
  return shards;
}

TEST(ListMergeTest, PagingThroughRandomShardsReturnsEveryItemOnceInOrder) {
  std::mt19937 random(20261202);
  for (const ListKind kind : {ListKind::deliveries, ListKind::dead_letters, ListKind::jobs}) {
    for (int round = 0; round < 300; ++round) {
      std::uniform_int_distribution<std::size_t> shard_count(1, 5), limit(1, 25);
      const auto shards = random_shards(kind, random, shard_count(random));
      std::vector<std::string> expected_keys;
      for (const auto& shard : shards) {
        for (const auto& record : shard.records) {
          if (record.matches) expected_keys.push_back(record.key);
        }
      }
      std::sort(expected_keys.rbegin(), expected_keys.rend());

      const std::size_t page_limit = limit(random);
      std::vector<std::string> listed_keys;
      std::string cursor;
      int pages = 0;
      do {
        ASSERT_LT(++pages, 10'000) << "paging does not end";
        std::vector<ShardPage> shard_pages;
        for (const auto& shard : shards) shard_pages.push_back(shard.list(kind, page_limit, cursor));
        const MergedPage merged = merge_pages(kind, shard_pages, page_limit);
        ASSERT_LE(merged.items.size(), page_limit);
        for (const auto& item : merged.items) listed_keys.push_back(*item_key(kind, item));
        if (!merged.next_cursor.empty() && !cursor.empty()) {
          ASSERT_LT(*cursor_key(kind, merged.next_cursor), *cursor_key(kind, cursor)) << "no progress";
        }
        cursor = merged.next_cursor;
      } while (!cursor.empty());
      ASSERT_EQ(listed_keys, expected_keys) << "kind " << static_cast<int>(kind) << ", round " << round
                                            << ", limit " << page_limit;
    }
  }
}

}  // namespace list_merge_test
}  // namespace relay::cluster
