// MetricsSnapshot::ToPrometheusText: the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), which is
// what /metrics serves.

#include <charconv>
#include <cmath>
#include <string>

#include "weir/metrics.h"

namespace weir {

namespace {

// Sample values: integers exactly, others as the shortest text that reads
// back as the same double; NaN and infinities as Prometheus spells them.
void AppendValue(double value, std::string& out) {
  if (std::isnan(value)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out.append(value > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buffer[64];
  std::to_chars_result result;
  if (value == std::trunc(value) && std::fabs(value) < 9.007199254740992e15) {
    result = std::to_chars(buffer, buffer + sizeof(buffer), static_cast<int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  }
  out.append(buffer, result.ptr);
}

// Label values escape backslash, double quote and newline.
void AppendLabelValue(std::string_view value, std::string& out) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

// HELP text escapes backslash and newline.
void AppendHelp(std::string_view help, std::string& out) {
  for (char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

// `{a="1",b="2"}` with an optional extra label (a histogram bucket's `le`);
// nothing for no labels.
void AppendLabels(const MetricLabels& labels, std::string& out, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out.append(name);
    out.append("=\"");
    AppendLabelValue(value, out);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out.append(extra_name);
    out.append("=\"");
    out.append(extra_value);
    out.push_back('"');
  }
  out.push_back('}');
}

void AppendSample(std::string_view name, std::string_view suffix, const MetricLabels& labels,
                  double value, std::string& out) {
  out.append(name);
  out.append(suffix);
  AppendLabels(labels, out);
  out.push_back(' ');
  AppendValue(value, out);
  out.push_back('\n');
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string MetricsSnapshot::ToPrometheusText() const {
  std::string out;
  for (const MetricFamily& family : families) {
    if (family.series.empty()) continue;
    out.append("# HELP ");
    out.append(family.name);
    out.push_back(' ');
    AppendHelp(family.help, out);
    out.append("\n# TYPE ");
    out.append(family.name);
    out.push_back(' ');
    out.append(TypeName(family.type));
    out.push_back('\n');
    for (const MetricSeries& series : family.series) {
      if (family.type != MetricType::kHistogram) {
        AppendSample(family.name, "", series.labels, series.value, out);
        continue;
      }
      const HistogramSnapshot& histogram = series.histogram;
      int64_t cumulative = 0;
      for (size_t idx = 0; idx <= histogram.bounds.size(); ++idx) {
        cumulative += idx < histogram.counts.size() ? histogram.counts[idx] : 0;
        std::string le;
        if (idx < histogram.bounds.size()) {
          AppendValue(histogram.bounds[idx], le);
        } else {
          le = "+Inf";
        }
        out.append(family.name);
        out.append("_bucket");
        AppendLabels(series.labels, out, "le", le);
        out.push_back(' ');
        AppendValue(static_cast<double>(cumulative), out);
        out.push_back('\n');
      }
      AppendSample(family.name, "_sum", series.labels, histogram.sum, out);
      AppendSample(family.name, "_count", series.labels, static_cast<double>(cumulative), out);
    }
  }
  return out;
}

}  // namespace weir
