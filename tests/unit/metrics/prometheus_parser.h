// A strict parser of the Prometheus text exposition format 0.0.4, for the
// tests (promtool is not available): it rejects anything a Prometheus server
// would, and a little more (what weir never writes).
//
//   - lines are `# HELP`, `# TYPE`, other comments, blank, or samples;
//   - metric and label names match their grammars; label values escape
//     only \\, \" and \n; values are Go floats (incl. NaN, +Inf, -Inf);
//   - one TYPE per family, before its samples; a family's samples are
//     contiguous; no series appears twice;
//   - counters are >= 0; histograms have `le` buckets in increasing order,
//     cumulative counts that never decrease, a +Inf bucket equal to _count,
//     and a _sum.

#ifndef WEIR_TESTS_UNIT_METRICS_PROMETHEUS_PARSER_H_
#define WEIR_TESTS_UNIT_METRICS_PROMETHEUS_PARSER_H_

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace weir::testing {

struct ParsedSample {
  std::string name;  // with its _bucket/_sum/_count suffix
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct ParsedFamily {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;
  std::vector<ParsedSample> samples;
};

struct ParsedExposition {
  std::map<std::string, ParsedFamily> families;

  // The value of the sample `name` whose labels include `labels`; the sum
  // over all that match.
  double Sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    double sum = 0;
    for (const auto& [family_name, family] : families) {
      for (const ParsedSample& sample : family.samples) {
        if (sample.name != name) continue;
        bool match = true;
        for (const auto& [label, value] : labels) {
          auto it = sample.labels.find(label);
          match &= it != sample.labels.end() && it->second == value;
        }
        if (match) sum += sample.value;
      }
    }
    return sum;
  }
};

namespace prometheus_internal {

// Splits at every `sep` (empty pieces kept); at most `max_pieces` pieces, the
// last holding the rest.
inline std::vector<std::string_view> Split(std::string_view text, char sep,
                                           size_t max_pieces = std::string_view::npos) {
  std::vector<std::string_view> pieces;
  while (pieces.size() + 1 < max_pieces) {
    const size_t at = text.find(sep);
    if (at == std::string_view::npos) break;
    pieces.push_back(text.substr(0, at));
    text.remove_prefix(at + 1);
  }
  pieces.push_back(text);
  return pieces;
}

inline bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t idx = 0; idx < name.size(); ++idx) {
    const char c = name[idx];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (idx > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool IsLabelName(std::string_view name) {
  if (name.empty() || name.find(':') != std::string_view::npos) return false;
  return IsMetricName(name);
}

inline bool ParseValue(std::string_view text, double* value) {
  if (text == "NaN") {
    *value = std::nan("");
    return true;
  }
  if (text == "+Inf" || text == "Inf") {
    *value = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *value = -INFINITY;
    return true;
  }
  if (text.empty()) return false;
  std::string copy(text);
  char* end = nullptr;
  *value = std::strtod(copy.c_str(), &end);
  // strtod also takes "inf", "nan" and hex: only plain decimal numbers here.
  for (char c : copy) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return false;
    }
  }
  return end == copy.c_str() + copy.size();
}

// The family a sample belongs to: its name without a histogram suffix when
// that family is a histogram.
inline std::string FamilyOf(const std::string& name,
                            const std::map<std::string, ParsedFamily>& families) {
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = name.substr(0, name.size() - suffix.size());
      auto it = families.find(base);
      if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary"))
        return base;
    }
  }
  return name;
}

}  // namespace prometheus_internal

inline absl::StatusOr<ParsedExposition> ParsePrometheusText(std::string_view text) {
  using namespace prometheus_internal;
  ParsedExposition out;
  std::set<std::string> finished;  // families whose samples ended
  std::string current;             // family of the previous sample
  std::set<std::string> series;
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the exposition does not end with a newline");
  }
  int line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    auto error = [&](std::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", std::string(what),
                                                     ": '", std::string(line), "'"));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string_view> parts = Split(line, ' ', 4);
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        const std::string name(parts[2]);
        if (!IsMetricName(name)) return error("bad metric name");
        ParsedFamily& family = out.families[name];
        family.name = name;
        if (!family.samples.empty() || finished.contains(name)) {
          return error("HELP/TYPE after the family's samples");
        }
        const std::string rest = parts.size() == 4 ? std::string(parts[3]) : std::string();
        if (parts[1] == "TYPE") {
          if (!family.type.empty()) return error("second TYPE");
          if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
              rest != "untyped") {
            return error("unknown type");
          }
          family.type = rest;
        } else {
          if (!family.help.empty()) return error("second HELP");
          // HELP escapes only \\ and \n.
          for (size_t idx = 0; idx < rest.size(); ++idx) {
            if (rest[idx] == '\\') {
              if (idx + 1 >= rest.size() || (rest[idx + 1] != '\\' && rest[idx + 1] != 'n')) {
                return error("bad escape in HELP");
              }
              ++idx;
            }
          }
          family.help = rest;
        }
      }
      continue;
    }
    // name{labels} value [timestamp]
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    ParsedSample sample;
    sample.name = std::string(line.substr(0, pos));
    if (!IsMetricName(sample.name)) return error("bad metric name");
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (true) {
        if (pos < line.size() && line[pos] == '}') {
          ++pos;
          break;
        }
        size_t eq = line.find('=', pos);
        if (eq == std::string_view::npos) return error("label without '='");
        const std::string label(line.substr(pos, eq - pos));
        if (!IsLabelName(label)) return error("bad label name");
        pos = eq + 1;
        if (pos >= line.size() || line[pos] != '"') return error("label value not quoted");
        ++pos;
        std::string value;
        bool closed = false;
        while (pos < line.size()) {
          const char c = line[pos++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (pos >= line.size()) return error("dangling escape");
            const char e = line[pos++];
            if (e == '\\') {
              value.push_back('\\');
            } else if (e == '"') {
              value.push_back('"');
            } else if (e == 'n') {
              value.push_back('\n');
            } else {
              return error("bad escape in a label value");
            }
          } else {
            value.push_back(c);
          }
        }
        if (!closed) return error("unterminated label value");
        if (!sample.labels.emplace(label, value).second) return error("label repeated");
        if (pos < line.size() && line[pos] == ',') {
          ++pos;
        } else if (pos >= line.size() || line[pos] != '}') {
          return error("expected ',' or '}'");
        }
      }
    }
    if (pos >= line.size() || line[pos] != ' ') return error("no value");
    std::vector<std::string_view> rest = Split(line.substr(pos + 1), ' ');
    if (rest.empty() || rest.size() > 2) return error("expected a value and an optional timestamp");
    if (!ParseValue(rest[0], &sample.value)) return error("bad value");
    if (rest.size() == 2) {
      double ts = 0;
      if (!ParseValue(rest[1], &ts) || ts != std::trunc(ts)) return error("bad timestamp");
    }
    const std::string family_name = FamilyOf(sample.name, out.families);
    if (family_name != current) {
      if (finished.contains(family_name)) return error("the family's samples are not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family_name;
    }
    ParsedFamily& family = out.families[family_name];
    family.name = family_name;
    if (family.type.empty()) family.type = "untyped";
    std::string key = sample.name;
    for (const auto& [label, value] : sample.labels) absl::StrAppend(&key, "|", label, "=", value);
    if (!series.insert(key).second) return error("duplicate series");
    if (family.type == "counter" && !(sample.value >= 0)) return error("negative counter");
    if (family.type == "histogram" && sample.name == family_name) {
      return error("a histogram sample without _bucket/_sum/_count");
    }
    if (family.type == "histogram" && sample.name.ends_with("_bucket") &&
        !sample.labels.contains("le")) {
      return error("a bucket without le");
    }
    family.samples.push_back(std::move(sample));
  }
  // Histograms: per series (labels without le), increasing le, cumulative
  // counts, +Inf == _count, a _sum.
  for (const auto& [name, family] : out.families) {
    if (family.type != "histogram") continue;
    struct Series {
      std::vector<std::pair<double, double>> buckets;
      bool has_sum = false;
      double count = -1;
    };
    std::map<std::map<std::string, std::string>, Series> by_labels;
    for (const ParsedSample& sample : family.samples) {
      std::map<std::string, std::string> labels = sample.labels;
      if (sample.name == name + "_bucket") {
        double le = 0;
        if (!ParseValue(labels["le"], &le)) {
          return absl::InvalidArgumentError(absl::StrCat(name, ": bad le '", labels["le"], "'"));
        }
        labels.erase("le");
        by_labels[labels].buckets.emplace_back(le, sample.value);
      } else if (sample.name == name + "_sum") {
        by_labels[labels].has_sum = true;
      } else if (sample.name == name + "_count") {
        by_labels[labels].count = sample.value;
      }
    }
    for (const auto& [labels, s] : by_labels) {
      if (s.buckets.empty() || !s.has_sum || s.count < 0) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": incomplete histogram series"));
      }
      for (size_t idx = 1; idx < s.buckets.size(); ++idx) {
        if (!(s.buckets[idx].first > s.buckets[idx - 1].first) ||
            s.buckets[idx].second < s.buckets[idx - 1].second) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": buckets not increasing or not cumulative"));
        }
      }
      if (!std::isinf(s.buckets.back().first) || s.buckets.back().second != s.count) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": +Inf bucket != _count"));
      }
    }
  }
  return out;
}

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_METRICS_PROMETHEUS_PARSER_H_
