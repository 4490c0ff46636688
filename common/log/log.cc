#include "common/log/log.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace calico::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
std::string g_component = "calico";  // guarded by g_mu
FILE* g_out = nullptr;               // guarded by g_mu; nullptr means stderr

const char* LevelName(Level level) {
  switch (level) {
    case Level::kTrace:
      return "trace";
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "?";
}

bool NeedsQuoting(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void AppendValue(std::string& out, std::string_view v) {
  if (!NeedsQuoting(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

void SetComponent(std::string_view component) {
  std::lock_guard lock(g_mu);
  g_component = std::string(component);
}
void SetLevel(Level level) { g_level.store(level); }
Level GetLevel() { return g_level.load(); }

bool ParseLevel(std::string_view text, Level* level) {
  std::string t;
  for (char c : text) t += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (t == "trace")
    *level = Level::kTrace;
  else if (t == "debug")
    *level = Level::kDebug;
  else if (t == "info")
    *level = Level::kInfo;
  else if (t == "warn" || t == "warning")
    *level = Level::kWarn;
  else if (t == "error" || t == "fatal" || t == "panic")
    *level = Level::kError;
  else if (t == "off" || t == "none")
    *level = Level::kOff;
  else
    return false;
  return true;
}

bool SetOutputFile(const std::string& path) {
  FILE* f = nullptr;
  if (!path.empty()) {
    f = std::fopen(path.c_str(), "ae");
    if (f == nullptr) return false;
  }
  std::lock_guard lock(g_mu);
  if (g_out != nullptr) std::fclose(g_out);
  g_out = f;
  return true;
}

std::string FormatLine(Level level, std::string_view component, std::string_view event,
                       std::initializer_list<Field> fields) {
  std::string line = "level=";
  line += LevelName(level);
  line += " comp=";
  AppendValue(line, component);
  line += " event=";
  AppendValue(line, event);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    AppendValue(line, value);
  }
  return line;
}

void Emit(Level level, std::string_view event, std::initializer_list<Field> fields) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[96];  // roomy: the compiler cannot prove the fields are in range
  std::snprintf(ts, sizeof ts, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tv.tv_usec / 1000);
  std::lock_guard lock(g_mu);
  std::string line = ts + FormatLine(level, g_component, event, fields) + "\n";
  FILE* out = g_out != nullptr ? g_out : stderr;
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

}  // namespace calico::log
