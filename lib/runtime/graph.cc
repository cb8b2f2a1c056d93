#include "weir/internal/graph.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace weir::internal {

std::vector<std::string> DisplayLabels(const Graph& graph) {
  std::vector<std::string> labels;
  labels.reserve(graph.nodes().size());
  absl::flat_hash_map<std::string, int> seen;
  for (const auto& node : graph.nodes()) {
    const int earlier = seen[node->name]++;
    labels.push_back(earlier == 0 ? node->name : absl::StrCat(node->name, "#", node->id));
  }
  return labels;
}

}  // namespace weir::internal
