#pragma once
// common/http/metrics.h — counters and gauges with labels, rendered in the Prometheus text
// exposition format (version 0.0.4). Deliberately tiny: no histograms, no registry globals
// (each daemon owns one registry and hands references out).
// Thread-safe: every method may be called from any thread.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace calico::http {

enum class MetricType { kCounter, kGauge };

// One metric name with a fixed list of label names; each distinct label-value tuple is a series.
class MetricFamily {
 public:
  // `label_values` must have one value per label name (a mismatch is a bug: CALICO-style check).
  void Inc(const std::vector<std::string>& label_values = {}, double delta = 1);
  void Set(const std::vector<std::string>& label_values, double value);  // gauges
  void Set(double value) { Set({}, value); }
  double Value(const std::vector<std::string>& label_values = {}) const;
  // Drops every series (a gauge family recomputed from scratch, e.g. per-pool utilisation
  // after a pool was deleted).
  void Clear();

 private:
  friend class MetricsRegistry;
  MetricFamily(std::string name, std::string help, MetricType type, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)) {}
  void Render(std::string& out) const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> labels_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, double> series_;
};

class MetricsRegistry {
 public:
  // Registering a name twice returns the existing family (types and labels must agree).
  MetricFamily& Counter(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {});
  MetricFamily& Gauge(std::string_view name, std::string_view help,
                      std::vector<std::string> label_names = {});
  // Every family, sorted by name, in Prometheus text format.
  std::string RenderText() const;

 private:
  MetricFamily& Add(std::string_view name, std::string_view help, MetricType type,
                    std::vector<std::string> label_names);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_;
};

// Prometheus label-value escaping: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);
// Sample value text: integers without a fraction, others shortest round-trip, +Inf/-Inf/NaN.
std::string FormatSampleValue(double value);

}  // namespace calico::http
