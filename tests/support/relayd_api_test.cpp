#include "tests/support/relayd_api_test.h"

#include <thread>
#include <utility>

namespace relay::test {

bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (probe()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RelaydApiTest::start(std::vector<std::string> args) {
  relayd_.emplace(RelaydOptions::with_args(std::move(args)));
}

RelaydProcess& RelaydApiTest::relayd() {
  if (!relayd_) relayd_.emplace();
  return *relayd_;
}

HttpResponse RelaydApiTest::call(std::string_view method, std::string_view path, const std::string& body) {
  return call(method, path, body, {bearer(kAdminKey)});
}

HttpResponse RelaydApiTest::call(std::string_view method, std::string_view path, const std::string& body,
                                 const Headers& headers) {
  return http_.request(method, relayd().url(path), body, headers);
}

nlohmann::json RelaydApiTest::get(const std::string& path) {
  const HttpResponse r = call("GET", path);
  EXPECT_EQ(r.status, 200) << path << " -> " << r.describe();
  return r.status == 200 && r.json().is_object() ? r.json() : json::object();
}

std::vector<nlohmann::json> RelaydApiTest::items(const std::string& path) {
  const json page = get(path);
  return page.contains("items") && page["items"].is_array() ? page["items"].get<std::vector<json>>()
                                                            : std::vector<json>{};
}

nlohmann::json RelaydApiTest::subscribe(const json& body) {
  const HttpResponse r = call("POST", "/v1/subscriptions", body.dump());
  EXPECT_EQ(r.status, 201) << body.dump() << " -> " << r.describe();
  const json created = r.json();
  const bool ok = r.status == 201 && created.is_object() && created.contains("id");
  EXPECT_TRUE(ok || r.status != 201) << "created without an id: " << r.describe();
  return ok ? created : json::object();
}

std::string RelaydApiTest::subscribe_id(const json& body) { return subscribe(body).value("id", ""); }

std::string RelaydApiTest::publish(const std::string& type, const json& payload, std::optional<int> deliveries) {
  return publish_event(json{{"type", type}, {"payload", payload}}, deliveries);
}

std::string RelaydApiTest::publish_event(const json& event, std::optional<int> deliveries) {
  const HttpResponse r = call("POST", "/v1/events", event.dump());
  EXPECT_EQ(r.status, 202) << event.dump() << " -> " << r.describe();
  if (r.status != 202 || !r.json().is_object()) return {};
  if (deliveries) {
    EXPECT_EQ(r.json().value("deliveries", -1), *deliveries) << event.dump();
  }
  return r.json().value("id", "");
}

nlohmann::json RelaydApiTest::delivery(const std::string& id) { return get("/v1/deliveries/" + id); }

std::vector<nlohmann::json> RelaydApiTest::deliveries_of_event(const std::string& event_id) {
  const json event = get("/v1/events/" + event_id);
  return event.contains("deliveries") ? event["deliveries"].get<std::vector<json>>() : std::vector<json>{};
}

std::string RelaydApiTest::delivery_id(const std::string& event_id, const std::string& subscription_id) {
  for (const json& d : deliveries_of_event(event_id)) {
    if (d.value("subscription_id", "") == subscription_id) return d.value("id", "");
  }
  ADD_FAILURE() << "event " << event_id << " has no delivery to " << subscription_id;
  return {};
}

nlohmann::json RelaydApiTest::await_state(const std::string& delivery_id, const std::string& state,
                                          std::chrono::milliseconds timeout) {
  json last;
  const bool reached = eventually(
      [&] {
        last = delivery(delivery_id);
        return last.value("state", "") == state;
      },
      timeout);
  EXPECT_TRUE(reached) << delivery_id << " never reached " << state << ", last: " << last.dump();
  return last;
}

}  // namespace relay::test
