#pragma once
// One logfmt line per event on stderr, with a stable event name:
//   ts=2026-11-26T09:46:02.123Z level=info comp=ipamd event=block_claimed cidr=10.0.0.0/26
// Never writes to stdout: the CNI plugin's stdout is its result.

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace calico::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

// A field value is always pre-formatted text; logfmt quoting is applied on output.
using Field = std::pair<std::string_view, std::string>;

void SetComponent(std::string_view component);
void SetLevel(Level level);
Level GetLevel();
// Accepts trace|debug|info|warn|warning|error|off (case-insensitive); false if unknown.
bool ParseLevel(std::string_view text, Level* level);
// Redirects output to a file (appending); empty path means stderr. False if it cannot be opened.
bool SetOutputFile(const std::string& path);

void Emit(Level level, std::string_view event, std::initializer_list<Field> fields);

inline bool Enabled(Level level) { return level >= GetLevel(); }
inline void Trace(std::string_view e, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kTrace)) Emit(Level::kTrace, e, f);
}
inline void Debug(std::string_view e, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kDebug)) Emit(Level::kDebug, e, f);
}
inline void Info(std::string_view e, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kInfo)) Emit(Level::kInfo, e, f);
}
inline void Warn(std::string_view e, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kWarn)) Emit(Level::kWarn, e, f);
}
inline void Error(std::string_view e, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kError)) Emit(Level::kError, e, f);
}

// Formats one logfmt line (without timestamp) — exposed for tests.
std::string FormatLine(Level level, std::string_view component, std::string_view event,
                       std::initializer_list<Field> fields);

}  // namespace calico::log
