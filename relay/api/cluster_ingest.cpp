// Ingest in cluster mode (spec section 7): an event with an ordering key or a client id is stored
// on the shard that owns that key (rendezvous hashing over the live shards, ClusterView::owner),
// so that one shard sees every event of an ordering key, in order, and every repeat of a client
// id; other events are stored where they arrive.
//
// The ordering key is the routing key when the event has one, else the client id. Routing by
// client id when both are given would scatter one ordering key's events over the shards, and no
// shard could order them; routing by ordering key keeps deduplication as well, since a retried
// event carries the same ordering key and so reaches the same shard as its first try.

#include <map>

#include "relay/api/cluster_router.h"
#include "relay/api/event_parsing.h"
#include "relay/api/http_responses.h"
#include "relay/cluster/batch_split.h"

namespace relay {

namespace asio = boost::asio;

namespace {

// False only when `body` certainly names neither a client id nor an ordering key, so that most
// events without either are not parsed twice (here, then by the handler). A member name is
// written "id" or "ordering_key", or with a \u escape (no other escape makes a letter or '_').
bool may_name_routing_key(std::string_view body) {
  return body.find("\"id\"") != std::string_view::npos || body.find("\"ordering_key\"") != std::string_view::npos ||
         body.find("\\u") != std::string_view::npos;
}

// The key that decides an event's shard; empty for none.
const std::string& routing_key(const mutations::NewEvent& event) {
  return event.ordering_key.empty() ? event.client_id : event.ordering_key;
}

}  // namespace

asio::awaitable<HttpResponse> ClusterRouter::ingest(const LocalHandler& local, const RouteRequest& request) {
  const std::string_view idempotency_key = request.http["Idempotency-Key"];
  if (idempotency_key.empty() && !may_name_routing_key(request.http.body())) co_return co_await local(request);
  // An event that does not parse is refused here, as the handler refuses it.
  const auto event = parse_event_body(request.http, idempotency_key);
  if (!event || routing_key(*event).empty()) co_return co_await local(request);
  auto owner = view_.owner(routing_key(*event));
  if (!owner || owner->name == view_.self().name) co_return co_await local(request);
  cluster::PeerRequest forward = peer_request(request.http, std::string(request.http.body()));
  std::string shard = owner->name;
  // A batch element cannot carry the Idempotency-Key header: such an event goes alone.
  auto answer = co_await coalescer_.forward(std::move(*owner), std::move(forward), idempotency_key.empty());
  const Part part = part_of(std::move(shard), std::move(answer));
  co_return part.answered ? response_of(part) : shard_unavailable(part);
}

asio::awaitable<HttpResponse> ClusterRouter::ingest_batch(const LocalHandler& local, const RouteRequest& request) {
  std::vector<std::string_view> texts;
  const auto events = parse_event_batch_body(request.http, &texts);
  if (!events) co_return co_await local(request);

  // Each event's place: an error answered in place, this shard's sub-batch, or another's.
  const std::string self = view_.self().name;
  std::vector<std::string> results(events->size());
  std::vector<std::size_t> here;
  struct Elsewhere {
    cluster::ShardInfo shard;
    std::vector<std::size_t> elements;
  };
  std::map<std::string, Elsewhere> elsewhere;  // by shard name
  for (std::size_t i = 0; i < events->size(); ++i) {
    const auto& event = (*events)[i];
    if (!event) {
      results[i] = error_json(event.error());
      continue;
    }
    auto owner = routing_key(*event).empty() ? std::nullopt : view_.owner(routing_key(*event));
    if (!owner || owner->name == self) {
      here.push_back(i);
      continue;
    }
    auto& part = elsewhere[owner->name];
    if (part.elements.empty()) part.shard = std::move(*owner);
    part.elements.push_back(i);
  }
  // Nothing to split: the batch is this shard's, answered exactly as a single node answers it.
  if (elsewhere.empty()) co_return co_await local(request);

  // Every sub-batch at once; this shard's through its handler, like the others' a batch of its own.
  HttpRequest local_http(request.http.base());  // the header; the body is the sub-batch
  local_http.body() = cluster::sub_batch_body(texts, here);
  const RouteRequest local_request{local_http, "", {}};
  std::vector<std::vector<std::size_t>> elements;  // of each part, in call_all's order
  std::vector<Part> parts;
  if (!here.empty()) elements.push_back(here);
  std::vector<cluster::ShardInfo> shards;
  std::vector<cluster::PeerRequest> forwards;
  for (auto& [name, part] : elsewhere) {
    shards.push_back(std::move(part.shard));
    forwards.push_back(peer_request(request.http, cluster::sub_batch_body(texts, part.elements)));
    elements.push_back(std::move(part.elements));
  }
  std::size_t forwarded_events = 0;
  for (const auto& part_elements : elements) forwarded_events += part_elements.size();
  metrics_.cluster_forwarded_events(forwarded_events - here.size());
  parts = co_await call_each(std::move(shards), std::move(forwards), RelayMetrics::ForwardKind::ingest,
                             here.empty() ? nullptr : &local, &local_request);

  for (std::size_t p = 0; p < parts.size(); ++p) {
    const Part& part = parts[p];
    const auto& indices = elements[p];
    std::optional<std::vector<std::string>> answered;
    if (part.answered) answered = cluster::sub_batch_results(part.status, part.body, indices.size());
    // A sub-batch refused whole, or lost: each of its events gets that error, to retry alone.
    std::string error;
    if (!answered) {
      const auto refusal = part.answered ? cluster::error_object(part.body) : std::nullopt;
      error = refusal ? *refusal : error_json(Error{Errc::shard_unavailable, "shard " + part.shard +
                                                                                  " did not answer within " +
                                                                                  std::to_string(options_.timeout.count()) +
                                                                                  " ms: retry this event"});
    }
    for (std::size_t k = 0; k < indices.size(); ++k) results[indices[k]] = answered ? (*answered)[k] : error;
  }
  co_return json_text_response(200, cluster::batch_answer(results));
}

}  // namespace relay
