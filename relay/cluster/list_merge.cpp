#include "relay/cluster/list_merge.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "relay/core/time.h"
#include "storage/keys.h"

namespace relay::cluster {

using nlohmann::json;

namespace {

std::string_view id_prefix_of(ListKind kind) {
  return kind == ListKind::jobs ? keys::kJobPrefix : keys::kDeliveryPrefix;
}

std::optional<std::string> raw_id(std::string_view text, std::string_view prefix) {
  const auto raw = keys::parse_id(text, prefix);
  if (!raw) return std::nullopt;
  return std::string(raw->data(), raw->size());
}

// A dead letter's time of death: the completed_at of a dead delivery (storage/mutations.cpp
// keys the dead-letter queue by it).
std::optional<UnixMillis> dead_at(const json& item) {
  const auto it = item.find("completed_at");
  if (it == item.end() || !it->is_string()) return std::nullopt;
  return parse_time(it->get<std::string>());
}

const std::string* id_of(const json& item) {
  if (!item.is_object()) return nullptr;
  const auto it = item.find("id");
  return it != item.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

// The cursor a single node would give if `item` were the last one it examined.
std::string cursor_of(ListKind kind, const json& item) {
  const std::string& id = *id_of(item);
  if (kind != ListKind::dead_letters) return id;
  return std::to_string(*dead_at(item)) + "." + id;
}

struct Entry {
  std::string key;
  json item;
};

}  // namespace

std::optional<std::string> item_key(ListKind kind, const json& item) {
  const std::string* id = id_of(item);
  if (id == nullptr) return std::nullopt;
  auto raw = raw_id(*id, id_prefix_of(kind));
  if (!raw || kind != ListKind::dead_letters) return raw;
  const auto time = dead_at(item);
  if (!time || *time < 0) return std::nullopt;
  return keys::dead_letter_key(*time, *id);
}

std::optional<std::string> cursor_key(ListKind kind, std::string_view cursor) {
  if (kind != ListKind::dead_letters) return raw_id(cursor, id_prefix_of(kind));
  // "<dead_at ms>.<delivery id>", as storage/queries.cpp reads it.
  const auto dot = cursor.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  UnixMillis time = 0;
  const auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + dot, time);
  if (ec != std::errc() || end != cursor.data() + dot || time < 0) return std::nullopt;
  const std::string_view id = cursor.substr(dot + 1);
  if (!keys::parse_id(id, keys::kDeliveryPrefix)) return std::nullopt;
  return keys::dead_letter_key(time, id);
}

ShardPage parse_page(ListKind kind, std::string shard, std::string_view body) {
  ShardPage page;
  page.shard = std::move(shard);
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return page;
  const auto items = parsed.find("items");
  const auto cursor = parsed.find("next_cursor");
  if (items == parsed.end() || !items->is_array() || cursor == parsed.end()) return page;
  if (cursor->is_string()) {
    page.next_cursor = cursor->get<std::string>();
    if (!cursor_key(kind, page.next_cursor)) return page;
  } else if (!cursor->is_null()) {
    return page;
  }
  for (const auto& item : *items) {
    if (!item_key(kind, item)) return page;
  }
  page.items.assign(items->begin(), items->end());
  page.answered = true;
  return page;
}

MergedPage merge_pages(ListKind kind, std::vector<ShardPage> pages, std::size_t limit) {
  MergedPage merged;
  std::vector<Entry> entries;
  std::optional<std::string> frontier;  // the highest cursor of a shard with more to examine
  std::string frontier_cursor;
  for (auto& page : pages) {
    if (!page.answered) {
      merged.incomplete.push_back(page.shard);
      continue;
    }
    for (auto& item : page.items) {
      if (auto key = item_key(kind, item)) entries.push_back({std::move(*key), std::move(item)});
    }
    if (page.next_cursor.empty()) continue;
    if (auto key = cursor_key(kind, page.next_cursor); key && (!frontier || *key > *frontier)) {
      frontier = std::move(key);
      frontier_cursor = page.next_cursor;
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.key > b.key; });
  entries.erase(std::unique(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.key == b.key; }),
                entries.end());
  // Below the frontier an unfinished shard has not looked yet: nothing there is listed now.
  std::size_t eligible = entries.size();
  if (frontier) {
    eligible = static_cast<std::size_t>(
        std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.key < *frontier; }) -
        entries.begin());
  }
  const std::size_t taken = std::min(limit, eligible);
  for (std::size_t i = 0; i < taken; ++i) merged.items.push_back(std::move(entries[i].item));
  if (taken == limit && taken > 0 && (eligible > taken || frontier)) {
    merged.next_cursor = cursor_of(kind, merged.items.back());
  } else if (frontier) {
    merged.next_cursor = frontier_cursor;
  }
  return merged;
}

json to_json(const MergedPage& page) {
  json out = {{"items", page.items},
              {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}};
  if (!page.incomplete.empty()) out["incomplete"] = page.incomplete;
  return out;
}

ShardEventTypes parse_event_types(std::string shard, std::string_view body) {
  ShardEventTypes out;
  out.shard = std::move(shard);
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return out;
  const auto items = parsed.find("items");
  if (items == parsed.end() || !items->is_array()) return out;
  for (const auto& item : *items) {
    if (!item.is_object()) return out;
    const auto type = item.find("type");
    const auto count = item.find("count");
    const auto last_seen = item.find("last_seen");
    if (type == item.end() || !type->is_string() || count == item.end() || !count->is_number_unsigned() ||
        last_seen == item.end() || !last_seen->is_string() || !parse_time(last_seen->get<std::string>())) {
      return out;
    }
  }
  out.items.assign(items->begin(), items->end());
  out.answered = true;
  return out;
}

json merge_event_types(const std::vector<ShardEventTypes>& shards) {
  struct Sum {
    std::uint64_t count = 0;
    UnixMillis last_seen_ms = 0;
    std::string last_seen;
  };
  std::map<std::string, Sum> by_type;  // std::string orders bytewise, as the event_types family
  std::vector<std::string> incomplete;
  for (const auto& shard : shards) {
    if (!shard.answered) {
      incomplete.push_back(shard.shard);
      continue;
    }
    for (const auto& item : shard.items) {
      Sum& sum = by_type[item.at("type").get<std::string>()];
      sum.count += item.at("count").get<std::uint64_t>();
      const std::string last_seen = item.at("last_seen").get<std::string>();
      const UnixMillis ms = parse_time(last_seen).value_or(0);
      if (sum.last_seen.empty() || ms > sum.last_seen_ms) {
        sum.last_seen_ms = ms;
        sum.last_seen = last_seen;
      }
    }
  }
  json items = json::array();
  for (const auto& [type, sum] : by_type) {
    items.push_back({{"type", type}, {"count", sum.count}, {"last_seen", sum.last_seen}});
  }
  json out = {{"items", std::move(items)}};
  if (!incomplete.empty()) out["incomplete"] = std::move(incomplete);
  return out;
}

}  // namespace relay::cluster
