#include "relay/cluster/directory_view.h"

#include "relay/cluster/rendezvous.h"

namespace relay::cluster {

namespace {

ShardInfo live_info(const LiveShard& shard) { return ShardInfo{shard.name, shard.number, shard.advertise, true}; }

}  // namespace

ShardInfo DirectoryView::self() const { return live_info(directory_.self()); }

std::vector<ShardInfo> DirectoryView::live_shards() const {
  std::vector<ShardInfo> shards;
  shards.reserve(directory_.live().size());
  for (const auto& shard : directory_.live()) shards.push_back(live_info(shard));
  return shards;
}

std::vector<ShardInfo> DirectoryView::known_shards() const {
  std::vector<ShardInfo> shards = live_shards();
  for (const auto& [name, number] : directory_.numbers()) {
    if (!directory_.find(name)) shards.push_back(ShardInfo{name, number, "", false});
  }
  return shards;
}

std::optional<ShardInfo> DirectoryView::shard_by_number(std::uint32_t number) const {
  if (const auto live = directory_.find_by_number(number)) return live_info(*live);
  if (directory_.self().number == number) return self();
  for (const auto& [name, known] : directory_.numbers()) {
    if (known == number) return ShardInfo{name, number, "", false};
  }
  return std::nullopt;
}

std::optional<ShardInfo> DirectoryView::owner(std::string_view key) const {
  const std::string name = cluster::owner(key, directory_.live_names());
  if (name.empty()) return std::nullopt;
  if (const auto live = directory_.find(name)) return live_info(*live);
  return std::nullopt;
}

}  // namespace relay::cluster
