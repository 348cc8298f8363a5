#pragma once
// RelaydApiTest: the base fixture of black-box tests that drive one relayd through its admin
// API (subscribe, publish, read deliveries back, wait for a state). relayd's state is only
// visible through its API, so waiting is polling: eventually().

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/relayd_process.h"

namespace relay::test {

// Generous: a failure shows as a timeout, success is much faster.
inline constexpr std::chrono::milliseconds kApiWait{20'000};

// Polls `probe` every 20 ms until it holds (true) or `timeout` passes (false).
bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds timeout = kApiWait);

class RelaydApiTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  // Starts relayd with the default flags of RelaydProcess plus `args`.
  void start(std::vector<std::string> args);
  // The running relayd; one with the default flags if the test started none.
  RelaydProcess& relayd();

  // A request with the admin key.
  HttpResponse call(std::string_view method, std::string_view path, const std::string& body = {});
  // A request with exactly `headers` (none: unauthenticated).
  HttpResponse call(std::string_view method, std::string_view path, const std::string& body,
                    const Headers& headers);
  // GET that must answer 200; the JSON body (an empty object after recording a failure).
  json get(const std::string& path);
  // The items of one page of a listing.
  std::vector<json> items(const std::string& path);
  // Creates a subscription; the stored object, or an empty object after recording a failure.
  json subscribe(const json& body);
  std::string subscribe_id(const json& body);
  // Publishes an event; its id, or "" after recording a failure. `deliveries` is the fan-out
  // count relayd must answer.
  std::string publish(const std::string& type, const json& payload, std::optional<int> deliveries = std::nullopt);
  // Publishes a whole event body ({"type", "payload", "tenant", ...}); as publish().
  std::string publish_event(const json& event, std::optional<int> deliveries = std::nullopt);
  json delivery(const std::string& id);
  std::vector<json> deliveries_of_event(const std::string& event_id);
  // The id of the event's delivery to `subscription_id`, or "" after recording a failure.
  std::string delivery_id(const std::string& event_id, const std::string& subscription_id);
  // Polls the delivery until its state is `state`; the last answer.
  json await_state(const std::string& delivery_id, const std::string& state,
                   std::chrono::milliseconds timeout = kApiWait);

  std::optional<RelaydProcess> relayd_;
  HttpClient http_;
};

}  // namespace relay::test
