#include "relay/cluster/shard_directory.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <exception>
#include <set>

namespace relay::cluster {

namespace asio = boost::asio;

namespace {

// The smallest number >= 1 that no numbers/ key holds.
std::uint32_t smallest_unused(const std::vector<KeyValue>& kvs, const std::string& numbers_prefix) {
  std::set<std::uint32_t> taken;
  for (const auto& kv : kvs) {
    if (const auto suffix = ClusterKeys::suffix(kv.key, numbers_prefix)) {
      if (const auto n = ClusterKeys::parse_number(*suffix)) taken.insert(*n);
    }
  }
  std::uint32_t candidate = 1;
  for (const auto n : taken) {
    if (n != candidate) break;
    ++candidate;
  }
  return candidate;
}

}  // namespace

ShardDirectory::ShardDirectory(asio::any_io_executor executor, ClusterStore& store, const Clock& clock,
                               Logger& logger, ShardDirectoryOptions options)
    : executor_(std::move(executor)),
      store_(store),
      clock_(clock),
      logger_(logger),
      options_(std::move(options)),
      keys_(options_.prefix),
      keeper_timer_(executor_),
      watcher_timer_(executor_) {
  self_.name = options_.name;
}

ShardDirectory::~ShardDirectory() { stop(); }

asio::awaitable<Result<std::uint32_t>> ShardDirectory::allocate(std::uint32_t known) {
  const std::string& name = options_.name;
  if (!is_valid_shard_name(name)) {
    co_return make_error(Errc::invalid_field, "shard name '" + name + "' is not 1-63 characters of [a-z0-9-]");
  }
  const std::string name_key = keys_.shard_name(name);
  const std::string numbers_prefix = keys_.shard_numbers();
  for (int attempt = 0; attempt < options_.allocate_attempts; ++attempt) {
    auto current = co_await store_.range(name_key, false);
    if (!current) co_return current.error();
    if (!current->kvs.empty()) {
      const auto number = decode_name_value(current->kvs.front().value);
      if (!number) co_return make_error(Errc::internal, "etcd key " + name_key + " holds no shard number");
      if (known != 0 && *number != known) {
        co_return make_error(Errc::conflict, "the data directory belongs to shard number " + std::to_string(known) +
                                                 " but etcd gives shard '" + name + "' number " +
                                                 std::to_string(*number));
      }
      self_.number = *number;
      co_return *number;
    }
    // A new name (or one etcd forgot): a candidate number, taken only if still free.
    std::uint32_t candidate = known;
    std::int64_t candidate_revision = 0;  // numbers/<candidate>'s, when it names this shard already
    if (candidate == 0) {
      auto numbers = co_await store_.range(numbers_prefix, true);
      if (!numbers) co_return numbers.error();
      candidate = smallest_unused(numbers->kvs, numbers_prefix);
    } else {
      const std::string number_key = keys_.shard_number(candidate);
      auto holder = co_await store_.range(number_key, false);
      if (!holder) co_return holder.error();
      if (!holder->kvs.empty()) {
        const auto holder_name = decode_number_value(holder->kvs.front().value);
        if (holder_name != name) {
          co_return make_error(Errc::conflict, "the data directory belongs to shard number " + std::to_string(known) +
                                                   ", which etcd gives to shard '" + holder_name.value_or("?") + "'");
        }
        candidate_revision = holder->kvs.front().mod_revision;
      }
    }
    Txn txn;
    txn.compares.push_back(Compare{name_key, 0});
    txn.compares.push_back(Compare{keys_.shard_number(candidate), candidate_revision});
    txn.then.emplace_back(Put{name_key, encode_name_value(candidate), 0});
    txn.then.emplace_back(Put{keys_.shard_number(candidate), encode_number_value(name), 0});
    auto committed = co_await store_.commit(std::move(txn));
    if (!committed) co_return committed.error();
    if (committed->succeeded) {
      self_.number = candidate;
      logger_.info("shard number allocated", {{"shard", name}, {"number", candidate}});
      co_return candidate;
    }
    // Another shard took the name or the number first: read again.
  }
  co_return make_error(Errc::unavailable, "no shard number after " + std::to_string(options_.allocate_attempts) +
                                              " attempts: too many shards starting at once");
}

void ShardDirectory::set_number(std::uint32_t number) { self_.number = number; }

asio::awaitable<Status> ShardDirectory::join(std::string advertise) {
  if (self_.number == 0) co_return make_error(Errc::internal, "join() before the shard has a number");
  self_.advertise = std::move(advertise);
  self_.started_at = clock_.now_ms();
  joined_ = true;
  publish();
  Status registered = co_await register_live();
  if (!registered) {
    logger_.warn("cannot register the shard as live in etcd yet: retrying in the background",
                 {{"shard", self_.name}, {"error", registered.error().message}});
  }
  spawn(keep_live(++keeper_generation_));
  if (!watching_) spawn(watch_registry());
  co_return registered;
}

asio::awaitable<void> ShardDirectory::leave() {
  joined_ = false;
  keeper_timer_.cancel();
  if (lease_ != 0) {
    const std::int64_t lease = std::exchange(lease_, 0);
    if (auto revoked = co_await store_.revoke_lease(lease); !revoked && revoked.error().code != Errc::not_found) {
      logger_.warn("cannot revoke the shard's lease: the others see it go when it runs out",
                   {{"shard", self_.name}, {"error", revoked.error().message}});
    }
  }
  publish();
}

void ShardDirectory::stop() {
  stopped_ = true;
  keeper_timer_.cancel();
  watcher_timer_.cancel();
  watch_.reset();
}

void ShardDirectory::spawn(asio::awaitable<void> task) {
  ++running_;
  asio::co_spawn(executor_, std::move(task), [this](const std::exception_ptr& error) {
    --running_;
    if (error) std::rethrow_exception(error);
  });
}

asio::awaitable<void> ShardDirectory::pause(asio::steady_timer& timer, std::chrono::milliseconds delay) {
  timer.expires_after(delay);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<Status> ShardDirectory::register_live() {
  auto granted = co_await store_.grant_lease(options_.lease_ttl);
  if (!granted) co_return granted.error();
  const std::int64_t lease = *granted;
  Txn txn;
  txn.then.emplace_back(Put{keys_.live_shard(self_.name), encode_live_value(self_), lease});
  auto put = co_await store_.commit(std::move(txn));
  if (!put || !put->succeeded) {
    auto revoked = co_await store_.revoke_lease(lease);  // best effort: it runs out anyway
    (void)revoked;
    co_return put ? make_error(Errc::internal, "etcd refused an unconditional put") : put.error();
  }
  if (!joined_ || stopped_) {  // left meanwhile
    auto revoked = co_await store_.revoke_lease(lease);
    (void)revoked;
    co_return Ok{};
  }
  lease_ = lease;
  logger_.info("shard live in etcd", {{"shard", self_.name}, {"number", self_.number}, {"advertise", self_.advertise}});
  co_return Ok{};
}

asio::awaitable<void> ShardDirectory::keep_live(std::uint64_t generation) {
  bool unreachable_logged = false;
  // join() has just tried to register: the first step waits either way.
  auto delay = lease_ != 0 ? options_.keep_alive_interval : options_.retry_delay;
  // A keeper of an earlier join() (left, then joined again while it slept) ends.
  const auto current = [&] { return joined_ && !stopped_ && generation == keeper_generation_; };
  while (current()) {
    co_await pause(keeper_timer_, delay);
    if (!current()) break;
    if (lease_ == 0) {
      const Status registered = co_await register_live();
      delay = registered ? options_.keep_alive_interval : options_.retry_delay;
      if (registered && std::exchange(unreachable_logged, false)) {
        logger_.info("etcd reachable again", {{"shard", self_.name}});
      }
      continue;
    }
    const std::int64_t lease = lease_;
    const Status kept = co_await store_.keep_alive(lease);
    if (kept) {
      if (std::exchange(unreachable_logged, false)) logger_.info("etcd reachable again", {{"shard", self_.name}});
      delay = options_.keep_alive_interval;
    } else if (kept.error().code == Errc::not_found) {
      // Expired while etcd was out of reach (or revoked by hand): the live key went with it.
      logger_.warn("the shard's lease expired: registering again", {{"shard", self_.name}});
      if (lease_ == lease) lease_ = 0;
      delay = std::chrono::milliseconds(0);
    } else {
      if (!std::exchange(unreachable_logged, true)) {
        logger_.warn("cannot keep the shard live in etcd: still serving, retrying",
                     {{"shard", self_.name}, {"error", kept.error().message}});
      }
      delay = options_.retry_delay;
    }
  }
}

asio::awaitable<void> ShardDirectory::watch_registry() {
  watching_ = true;
  bool unreachable_logged = false;
  const std::string prefix = keys_.shards();
  while (!stopped_) {
    auto read = co_await store_.range(prefix, true);
    if (stopped_) break;
    if (!read) {
      if (!std::exchange(unreachable_logged, true)) {
        logger_.warn("cannot read the shard registry from etcd: keeping the last view, retrying",
                     {{"error", read.error().message}});
      }
      co_await pause(watcher_timer_, options_.retry_delay);
      continue;
    }
    unreachable_logged = false;
    load(read->kvs);
    reload_ = false;
    watch_ = store_.watch(prefix, read->revision + 1, [this](WatchBatch batch) { apply(batch); });
    // Batches arrive through the callback; this coroutine only waits for a compaction or stop().
    while (!reload_ && !stopped_) co_await pause(watcher_timer_, std::chrono::hours(24));
    watch_.reset();
    if (reload_) logger_.info("shard registry watch compacted: reading it again");
  }
  watching_ = false;
}

void ShardDirectory::load(const std::vector<KeyValue>& kvs) {
  watched_live_.clear();
  names_.clear();
  for (const auto& kv : kvs) apply(kv, /*deleted=*/false);
  loaded_ = true;
  publish();
}

void ShardDirectory::apply(const WatchBatch& batch) {
  if (stopped_) return;
  if (batch.compacted) {
    reload_ = true;
    watcher_timer_.cancel();
    return;
  }
  for (const auto& event : batch.events) apply(event.kv, event.kind == WatchEvent::Kind::del);
  publish();
}

void ShardDirectory::apply(const KeyValue& kv, bool deleted) {
  if (const auto name = ClusterKeys::suffix(kv.key, keys_.live_shards())) {
    if (deleted) {
      if (const auto it = watched_live_.find(*name); it != watched_live_.end()) watched_live_.erase(it);
    } else if (auto shard = decode_live_value(kv.value); shard && shard->name == *name) {
      watched_live_[shard->name] = std::move(*shard);
    } else {
      logger_.warn("ignoring an unreadable live shard entry in etcd", {{"key", kv.key}});
    }
  } else if (const auto named = ClusterKeys::suffix(kv.key, keys_.shard_names())) {
    if (deleted) {
      if (const auto it = names_.find(*named); it != names_.end()) names_.erase(it);
    } else if (const auto number = decode_name_value(kv.value)) {
      names_[std::string(*named)] = *number;
    } else {
      logger_.warn("ignoring an unreadable shard name entry in etcd", {{"key", kv.key}});
    }
  }
  // numbers/ only guards allocation; the view needs names/ and live/.
}

void ShardDirectory::publish() {
  std::vector<LiveShard> view;
  view.reserve(watched_live_.size() + 1);
  for (const auto& [name, shard] : watched_live_) {
    if (name != self_.name) view.push_back(shard);
  }
  if (joined_) view.push_back(self_);
  std::sort(view.begin(), view.end(), [](const LiveShard& a, const LiveShard& b) { return a.name < b.name; });
  std::size_t down = 0;
  for (const auto& [name, number] : names_) {
    const bool live = std::any_of(view.begin(), view.end(), [&](const LiveShard& s) { return s.name == name; });
    if (!live) ++down;
  }
  if (view == view_ && down == down_) return;
  view_ = std::move(view);
  down_ = down;
  if (on_change_) on_change_();
}

std::vector<std::string> ShardDirectory::live_names() const {
  std::vector<std::string> names;
  names.reserve(view_.size());
  for (const auto& shard : view_) names.push_back(shard.name);
  return names;
}

std::optional<LiveShard> ShardDirectory::find(std::string_view name) const {
  for (const auto& shard : view_) {
    if (shard.name == name) return shard;
  }
  return std::nullopt;
}

std::optional<LiveShard> ShardDirectory::find_by_number(std::uint32_t number) const {
  for (const auto& shard : view_) {
    if (shard.number == number) return shard;
  }
  return std::nullopt;
}

ShardCounts ShardDirectory::counts() const { return ShardCounts{view_.size(), down_}; }

}  // namespace relay::cluster
