#pragma once
// DirectoryView: the API's ClusterView (cluster_view.h) over this shard's ShardDirectory, with
// key owners by rendezvous hashing over the live shards' names. Shards that have a number but
// no live key are known and not live: they have no address to reach them by.
//
// Threading: the directory's (the io_context's thread).

#include "relay/cluster/cluster_view.h"
#include "relay/cluster/shard_directory.h"

namespace relay::cluster {

class DirectoryView final : public ClusterView {
 public:
  explicit DirectoryView(const ShardDirectory& directory) : directory_(directory) {}

  ShardInfo self() const override;
  std::vector<ShardInfo> live_shards() const override;
  std::vector<ShardInfo> known_shards() const override;
  std::optional<ShardInfo> shard_by_number(std::uint32_t number) const override;
  std::optional<ShardInfo> owner(std::string_view key) const override;

 private:
  const ShardDirectory& directory_;
};

}  // namespace relay::cluster
