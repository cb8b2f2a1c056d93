#include "lib/checkpoint/storage_registry.h"

#include <mutex>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace weir::internal {

namespace {

struct Registry {
  std::mutex mutex;
  absl::flat_hash_map<std::string, CheckpointStorageFactory> factories;  // Guarded by mutex.
};

// Built on first use: components register from static initializers, which
// may run before this file's.
Registry& GetRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace

void RegisterCheckpointStorageScheme(std::string scheme, CheckpointStorageFactory factory) {
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  registry.factories[std::move(scheme)] = factory;
}

CheckpointStorageFactory FindCheckpointStorageScheme(absl::string_view scheme) {
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  auto it = registry.factories.find(scheme);
  return it == registry.factories.end() ? nullptr : it->second;
}

absl::Status InvalidStorageUri(absl::string_view uri, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid checkpoint storage URI \"", uri, "\": ", why,
                   " (expected file:///absolute/path or s3://bucket/prefix)"));
}

}  // namespace weir::internal
