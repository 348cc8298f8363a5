#include "relay/cluster/forward_coalescer.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <charconv>
#include <utility>

#include "relay/cluster/batch_split.h"

namespace relay::cluster {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kBatchTarget = "/v1/events/batch";
constexpr std::string_view kBatchOpen = R"({"events":[)";
constexpr std::string_view kBatchClose = "]}";

// A batch refused as a request rather than for what its events are: each event alone may fare
// differently (a body over --max-body, a payload nested too deep for a batch element).
bool refused_as_batch(int status) {
  return status == 400 || status == 404 || status == 405 || status == 413 || status == 415;
}

std::string_view header_of(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return v;
  }
  return {};
}

// "202,200,400" -> {202, 200, 400}; nullopt unless exactly `count` statuses.
std::optional<std::vector<int>> parse_statuses(std::string_view text, std::size_t count) {
  std::vector<int> out;
  out.reserve(count);
  while (!text.empty()) {
    const std::size_t comma = std::min(text.find(','), text.size());
    int status = 0;
    const auto item = text.substr(0, comma);
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), status);
    if (error != std::errc{} || end != item.data() + item.size() || status < 100 || status > 599) return std::nullopt;
    out.push_back(status);
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  if (out.size() != count) return std::nullopt;
  return out;
}

}  // namespace

// One event waiting for its turn. Whoever changes its state wakes it by cancelling `wake`; the
// timer's expiry is the end of its wait for a turn.
struct ForwardCoalescer::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : wake(executor) {}
  PeerRequest event;
  asio::steady_timer wake;
  bool taken = false;    // out of the queue: in a batch, or leading one
  bool leading = false;  // to send the next batch
  std::optional<Result<PeerResponse>> answer;
};

std::optional<std::vector<PeerResponse>> coalesced_answers(const PeerResponse& batch, std::size_t count) {
  auto results = sub_batch_results(batch.status, batch.body, count);
  if (!results) return std::nullopt;
  const auto statuses = parse_statuses(header_of(batch.headers, kStatusesHeader), count);
  std::vector<PeerResponse> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::string& body = (*results)[i];
    const int status = statuses ? (*statuses)[i] : body.starts_with(R"({"error")") ? 400 : 202;
    out.push_back(PeerResponse{status, std::move(body), {{"Content-Type", "application/json"}}});
  }
  return out;
}

ForwardCoalescer::ForwardCoalescer(PeerClient& peers, RelayMetrics& metrics, Options options)
    : peers_(peers), metrics_(metrics), options_(std::move(options)) {
  // Nothing would ever be sent with 0.
  options_.max_in_flight = std::max<std::size_t>(1, options_.max_in_flight);
}

asio::awaitable<Result<PeerResponse>> ForwardCoalescer::forward(ShardInfo shard, PeerRequest event, bool batchable) {
  if (!batchable) co_return co_await send_alone(shard.base_url, std::move(event));
  Owner& owner = owners_[shard.name];
  owner.name = shard.name;
  owner.base_url = std::move(shard.base_url);
  if (owner.in_flight < options_.max_in_flight && owner.queue.empty()) {
    ++owner.in_flight;
    Result<PeerResponse> answer = co_await send_alone(owner.base_url, std::move(event));
    finish(owner, answer ? nullptr : &answer.error());
    co_return answer;
  }

  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  waiter->event = std::move(event);
  waiter->wake.expires_after(options_.timeout);
  owner.queue.push_back(waiter);
  for (;;) {
    co_await waiter->wake.async_wait(asio::as_tuple(asio::use_awaitable));
    if (waiter->answer) co_return std::move(*waiter->answer);
    if (waiter->leading) break;
    if (!waiter->taken) {
      // Its turn did not come in time: the owner is slow or swamped. Unsent, so safe to retry.
      std::erase(owner.queue, waiter);
      co_return make_error(Errc::unavailable, "waited over " + std::to_string(options_.timeout.count()) +
                                                  " ms behind earlier events for the same shard");
    }
    waiter->wake.expires_at(asio::steady_timer::time_point::max());  // in a batch: its answer comes
  }
  co_return co_await lead(owner, std::move(waiter));
}

asio::awaitable<Result<PeerResponse>> ForwardCoalescer::lead(Owner& owner, std::shared_ptr<Waiter> leader) {
  // The leader's own turn counts in owner.in_flight already (finish() made it lead).
  std::vector<std::shared_ptr<Waiter>> batch{std::move(leader)};
  std::size_t bytes = kBatchOpen.size() + batch.front()->event.body.size() + kBatchClose.size();
  while (!owner.queue.empty() && batch.size() < options_.max_batch_events) {
    const auto& next = owner.queue.front();
    if (bytes + 1 + next->event.body.size() > options_.max_batch_bytes) break;
    bytes += 1 + next->event.body.size();
    next->taken = true;
    batch.push_back(next);
    owner.queue.pop_front();
  }
  std::vector<Result<PeerResponse>> answers = co_await send_batch(owner.base_url, batch);
  const auto lost = std::find_if(answers.begin(), answers.end(), [](const auto& answer) { return !answer.ok(); });
  const std::optional<Error> error = lost == answers.end() ? std::nullopt : std::optional<Error>(lost->error());
  for (std::size_t i = 1; i < batch.size(); ++i) {
    batch[i]->answer = std::move(answers[i]);
    batch[i]->wake.cancel();
  }
  finish(owner, error ? &*error : nullptr);
  co_return std::move(answers.front());
}

asio::awaitable<std::vector<Result<PeerResponse>>> ForwardCoalescer::send_batch(
    const std::string& base_url, const std::vector<std::shared_ptr<Waiter>>& batch) {
  std::vector<Result<PeerResponse>> out;
  if (batch.size() == 1) {
    out.push_back(co_await send_alone(base_url, batch.front()->event));
    co_return out;
  }
  PeerRequest request;
  request.method = "POST";
  request.target = kBatchTarget;
  request.headers = batch.front()->event.headers;  // ClusterRouter's: the same for every event
  request.body = kBatchOpen;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (i != 0) request.body += ',';
    request.body += batch[i]->event.body;
  }
  request.body += kBatchClose;
  metrics_.cluster_forwarded(RelayMetrics::ForwardKind::ingest);
  metrics_.cluster_forwarded_events(batch.size());
  Result<PeerResponse> answer = co_await peers_.send(base_url, std::move(request), options_.timeout);

  if (answer && refused_as_batch(answer->status)) {
    // In order, one at a time: the events of one key keep their order. After one without an
    // answer the rest are not sent: each would wait for the timeout in turn.
    for (const auto& waiter : batch) {
      if (!out.empty() && !out.back()) {
        Result<PeerResponse> lost = out.back();
        out.push_back(std::move(lost));
        continue;
      }
      out.push_back(co_await send_alone(base_url, waiter->event));
    }
    co_return out;
  }
  if (answer && answer->status == 200) {
    auto answers = coalesced_answers(*answer, batch.size());
    if (!answers) {
      answer = make_error(Errc::unavailable, "the shard's answer to a batch of " + std::to_string(batch.size()) +
                                                 " events is not a batch answer");
    } else {
      for (auto& each : *answers) out.emplace_back(std::move(each));
      co_return out;
    }
  }
  // Refused whole for a reason that would refuse each event alone, or no answer: the same for all.
  out.assign(batch.size(), answer);
  co_return out;
}

asio::awaitable<Result<PeerResponse>> ForwardCoalescer::send_alone(const std::string& base_url, PeerRequest event) {
  metrics_.cluster_forwarded(RelayMetrics::ForwardKind::ingest);
  metrics_.cluster_forwarded_events(1);
  co_return co_await peers_.send(base_url, std::move(event), options_.timeout);
}

void ForwardCoalescer::finish(Owner& owner, const Error* lost) {
  --owner.in_flight;
  if (lost != nullptr) {
    // The owner just failed to answer: what waits for it would most likely wait in vain.
    for (const auto& waiter : owner.queue) {
      waiter->taken = true;
      waiter->answer = make_error(Errc::unavailable,
                                  "an earlier request to shard " + owner.name + " got no answer: " + lost->message);
      waiter->wake.cancel();
    }
    owner.queue.clear();
  }
  while (owner.in_flight < options_.max_in_flight && !owner.queue.empty()) {
    auto next = std::move(owner.queue.front());
    owner.queue.pop_front();
    next->taken = true;
    next->leading = true;
    ++owner.in_flight;
    next->wake.cancel();
  }
}

}  // namespace relay::cluster
