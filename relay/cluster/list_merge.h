#pragma once
// Merging one list call's pages from every shard into one page (spec section 7: lists merge
// every live shard in the list's order, and their cursors work across shards). Pure functions
// over the API's JSON forms, so that paging is tested with any shard contents.
//
// Why cursors work across shards: every shard's list is ordered by a key that is global, not
// per shard. Ids start with their creation time and then the shard's number, so the byte order
// of two ids from two shards is a total order, and a cursor is an exclusive upper bound in that
// order (the key of the last record a shard examined). The same cursor text can therefore be
// sent to every shard, and a merged page's cursor is a cursor of the single-node form.
//
// Why no item is skipped or repeated: a shard whose page carries a next_cursor has examined its
// keys only down to that cursor (its page was full, or its scan budget ran out). Below the
// highest such frontier some shard has not looked yet, so the merged page holds only items at or
// above it, and when it stops there its cursor is that frontier: the next page starts below
// everything this one could have seen.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay::cluster {

// The paginated lists that merge, each newest first.
enum class ListKind {
  deliveries,    // GET /v1/deliveries: by delivery id; cursor "dlv_..." (the last key examined)
  dead_letters,  // GET /v1/dlq: by time of death (the item's completed_at) then id; cursor
                 // "<dead_at Unix ms>.<dlv_...>", the dead-letter key of the last one examined
  jobs,          // GET /v1/jobs: by job id; cursor "job_..." (the last item)
};

// One shard's page of a list call.
struct ShardPage {
  std::string shard;
  bool answered = false;             // false: no usable answer (failed, timed out, nonsense)
  std::vector<nlohmann::json> items;  // in the list's order
  std::string next_cursor;           // empty: the shard's list ends with this page

  // The page of a shard without a usable answer.
  static ShardPage missing(std::string shard) { return {std::move(shard), false, {}, {}}; }
};

struct MergedPage {
  std::vector<nlohmann::json> items;
  std::string next_cursor;              // empty on the last page
  std::vector<std::string> incomplete;  // shards without a usable answer, in the order given
};

// A shard's answer body {"items": [...], "next_cursor": "..." | null} as a page of `kind`:
// answered, or not answered when the body is not such a page (an item without a key of the
// list's order, or a cursor that is not one of the list's).
ShardPage parse_page(ListKind kind, std::string shard, std::string_view body);

// The first `limit` items of every answered shard's items, in the list's order, that lie at or
// above every unfinished shard's frontier, and the cursor of the next page. An item two shards
// both answered (which ids make impossible) is listed once.
MergedPage merge_pages(ListKind kind, std::vector<ShardPage> pages, std::size_t limit);

// {"items": [...], "next_cursor": "..." | null}, with "incomplete": [...] when a shard is missing.
nlohmann::json to_json(const MergedPage& page);

// The key of the list's order (bytewise, descending in the list) of an item, and of a cursor:
// nullopt when the item or cursor is not one of the list's.
std::optional<std::string> item_key(ListKind kind, const nlohmann::json& item);
std::optional<std::string> cursor_key(ListKind kind, std::string_view cursor);

// GET /v1/event-types: every shard's {"items": [{"type", "count", "last_seen"}]} summed by type
// (counts added, the latest last_seen), ordered by type as a single node orders them.
struct ShardEventTypes {
  std::string shard;
  bool answered = false;
  std::vector<nlohmann::json> items;

  static ShardEventTypes missing(std::string shard) { return {std::move(shard), false, {}}; }
};
ShardEventTypes parse_event_types(std::string shard, std::string_view body);
// {"items": [...]}, with "incomplete": [...] when a shard is missing.
nlohmann::json merge_event_types(const std::vector<ShardEventTypes>& shards);

}  // namespace relay::cluster
