#include "tests/support/relayd_cluster_test.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace relay::test {

std::string made_up_id(std::string_view prefix, std::uint32_t instance, std::uint64_t counter) {
  // 6 bytes of creation time (a fixed moment of 2024), 4 of instance, 6 of counter.
  char hex[33];
  std::snprintf(hex, sizeof hex, "%012llx%08x%012llx", 0x019247f39a00ULL, static_cast<unsigned>(instance),
                static_cast<unsigned long long>(counter & 0xffffffffffffULL));
  return std::string(prefix) + hex;
}

std::set<std::string> webhook_ids(const TestSubscriber& sub, std::string_view path) {
  std::set<std::string> ids;
  for (const RecordedRequest& r : path.empty() ? sub.requests() : sub.requests(path)) {
    ids.insert(r.header("webhook-id").value_or(""));
  }
  return ids;
}

bool received_all(const TestSubscriber& sub, const std::vector<std::string>& ids, std::string_view path,
                  std::chrono::milliseconds timeout) {
  return eventually(
      [&] {
        const std::set<std::string> seen = webhook_ids(sub, path);
        return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return seen.contains(id); });
      },
      timeout);
}

std::vector<std::string> ids_of(const std::vector<nlohmann::json>& items) {
  std::vector<std::string> out;
  for (const nlohmann::json& item : items) out.push_back(item.value("id", ""));
  return out;
}

void RelaydClusterTest::start(RelaydClusterOptions options) { cluster_.emplace(std::move(options)); }

RelaydCluster& RelaydClusterTest::cluster() {
  if (!cluster_) cluster_.emplace();
  return *cluster_;
}

HttpResponse RelaydClusterTest::call(int shard, std::string_view method, std::string_view path,
                                     const std::string& body) {
  return cluster().call(shard, method, path, body);
}

HttpResponse RelaydClusterTest::call(int shard, std::string_view method, std::string_view path,
                                     const std::string& body, const Headers& headers) {
  return cluster().call(shard, method, path, body, headers);
}

nlohmann::json RelaydClusterTest::get(int shard, const std::string& path) {
  const HttpResponse r = call(shard, "GET", path);
  EXPECT_EQ(r.status, 200) << "shard " << shard << ": " << path << " -> " << r.describe();
  return r.status == 200 && r.json().is_object() ? r.json() : json::object();
}

nlohmann::json RelaydClusterTest::subscribe(int shard, const json& body) {
  const HttpResponse r = call(shard, "POST", "/v1/subscriptions", body.dump());
  EXPECT_EQ(r.status, 201) << "shard " << shard << ": " << body.dump() << " -> " << r.describe();
  const json created = r.json();
  return r.status == 201 && created.is_object() && created.contains("id") ? created : json::object();
}

bool RelaydClusterTest::await_subscription(int shard, const std::string& id, long status,
                                           const std::function<bool(const json&)>& ready) {
  HttpResponse last;
  const bool reached = eventually([&] {
    last = call(shard, "GET", "/v1/subscriptions/" + id);
    return last.status == status && (status != 200 || !ready || ready(last.json()));
  });
  EXPECT_TRUE(reached) << "shard " << shard << " never answered " << status << " for " << id
                       << ", last: " << last.describe();
  return reached;
}

std::string RelaydClusterTest::publish(int shard, const json& event, std::optional<int> deliveries) {
  const HttpResponse r = call(shard, "POST", "/v1/events", event.dump());
  EXPECT_EQ(r.status, 202) << "shard " << shard << ": " << event.dump() << " -> " << r.describe();
  if (r.status != 202 || !r.json().is_object()) return {};
  if (deliveries) {
    EXPECT_EQ(r.json().value("deliveries", -1), *deliveries) << "shard " << shard << ": " << event.dump();
  }
  return r.json().value("id", "");
}

std::vector<nlohmann::json> RelaydClusterTest::all_pages(int shard, const std::string& path, std::size_t limit,
                                                         std::size_t* pages) {
  std::vector<json> out;
  std::string cursor;
  std::size_t count = 0;
  for (;;) {
    std::string url = path + (path.find('?') == std::string::npos ? "?" : "&") + "limit=" + std::to_string(limit);
    if (!cursor.empty()) url += "&cursor=" + url_encode(cursor);
    const json page = get(shard, url);
    EXPECT_FALSE(page.contains("incomplete")) << url << " -> " << page.dump();
    const json page_items = page.value("items", json::array());
    EXPECT_LE(page_items.size(), limit) << url;
    for (const json& item : page_items) out.push_back(item);
    ++count;
    const json next = page.value("next_cursor", json());
    if (next.is_null()) break;
    if (!next.is_string() || next.get<std::string>().empty() || count > 100) {
      ADD_FAILURE() << "bad next_cursor: " << page.dump();
      break;
    }
    cursor = next.get<std::string>();
  }
  if (pages) *pages = count;
  return out;
}

}  // namespace relay::test
