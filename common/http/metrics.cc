#include "common/http/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calico::http {
namespace {

// A label count mismatch is a programming error in the daemon, not input: fail loudly.
void CheckArity(const std::string& name, size_t want, size_t got) {
  if (want != got) {
    std::fprintf(stderr, "metric %s: %zu label values for %zu labels\n", name.c_str(), got, want);
    std::abort();
  }
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Counters are integral almost always; "%g" would print 1234567 as 1.23457e+06.
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrFormat("%.17g", value);
}

void MetricFamily::Inc(const std::vector<std::string>& label_values, double delta) {
  CheckArity(name_, labels_.size(), label_values.size());
  std::lock_guard<std::mutex> lock(mu_);
  series_[label_values] += delta;
}

void MetricFamily::Set(const std::vector<std::string>& label_values, double value) {
  CheckArity(name_, labels_.size(), label_values.size());
  std::lock_guard<std::mutex> lock(mu_);
  series_[label_values] = value;
}

double MetricFamily::Value(const std::vector<std::string>& label_values) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(label_values);
  return it == series_.end() ? 0 : it->second;
}

void MetricFamily::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  series_.clear();
}

void MetricFamily::Render(std::string& out) const {
  absl::StrAppend(&out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " ",
                  type_ == MetricType::kCounter ? "counter" : "gauge", "\n");
  std::lock_guard<std::mutex> lock(mu_);
  // An unlabelled counter is exported as 0 before its first increment, so dashboards and
  // tests see the metric exists from the start.
  if (series_.empty() && labels_.empty()) absl::StrAppend(&out, name_, " 0\n");
  for (const auto& [values, value] : series_) {
    out += name_;
    if (!labels_.empty()) {
      out += '{';
      for (size_t i = 0; i < labels_.size(); ++i) {
        if (i > 0) out += ',';
        absl::StrAppend(&out, labels_[i], "=\"", EscapeLabelValue(values[i]), "\"");
      }
      out += '}';
    }
    absl::StrAppend(&out, " ", FormatSampleValue(value), "\n");
  }
}

MetricFamily& MetricsRegistry::Counter(std::string_view name, std::string_view help,
                                       std::vector<std::string> label_names) {
  return Add(name, help, MetricType::kCounter, std::move(label_names));
}

MetricFamily& MetricsRegistry::Gauge(std::string_view name, std::string_view help,
                                     std::vector<std::string> label_names) {
  return Add(name, help, MetricType::kGauge, std::move(label_names));
}

MetricFamily& MetricsRegistry::Add(std::string_view name, std::string_view help, MetricType type,
                                   std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type_ != type || it->second->labels_ != label_names) {
      std::fprintf(stderr, "metric %s registered twice with different type or labels\n",
                   std::string(name).c_str());
      std::abort();
    }
    return *it->second;
  }
  std::string key(name);
  auto family = std::unique_ptr<MetricFamily>(
      new MetricFamily(key, std::string(help), type, std::move(label_names)));
  MetricFamily& ref = *family;
  families_.emplace(key, std::move(family));
  return ref;
}

std::string MetricsRegistry::RenderText() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

}  // namespace calico::http
