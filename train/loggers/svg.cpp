// write_metrics_svg: metric curves as a plain SVG line chart, one panel per metric group.
#include "train/loggers/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "train/loggers/common.hpp"

namespace ember::train {
namespace {

constexpr double kWidth = 820, kPanelHeight = 280;
constexpr double kLeft = 72, kRight = 610, kTop = 36, kBottom = 236;  // the plot area inside a panel
constexpr size_t kMaxLegendChars = 26;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value); a non-finite value breaks the line
};

struct Panel {
  std::string title;
  std::vector<Series> series;
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab/newline are not allowed in XML 1.0 at all.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

bool starts_with(const std::string& s, const std::string& p) { return s.size() > p.size() && s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() > p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
bool is_separator(char c) { return c == '_' || c == '/' || c == '-' || c == '.'; }

// The panel a metric goes to: "loss" for every loss, else its name without the stage prefix and the
// _step/_epoch suffix Lightning adds.
std::string group_of(const std::string& name) {
  if (name.find("loss") != std::string::npos) return "loss";
  std::string base = name;
  for (const char* prefix : {"validation", "valid", "train", "test", "val"}) {
    const std::string p = prefix;
    if (starts_with(base, p) && is_separator(base[p.size()]) && base.size() > p.size() + 1) {
      base = base.substr(p.size() + 1);
      break;
    }
  }
  for (const char* suffix : {"_step", "_epoch", "/step", "/epoch"})
    if (ends_with(base, suffix)) {
      base.resize(base.size() - std::string(suffix).size());
      break;
    }
  return base;
}

bool is_eval_series(const std::string& name) { return name.rfind("val", 0) == 0 || name.rfind("test", 0) == 0; }

// Widens an empty range; works for values near the double limits too.
void widen(double& lo, double& hi) {
  if (hi > lo) return;
  const double d = lo == 0 ? 1.0 : std::abs(lo) * 0.05;
  lo -= d;
  hi += d;
}

// The position of v in [lo, hi] as a fraction, computed on halves so that hi - lo cannot overflow.
double fraction(double v, double lo, double hi) {
  const double span = hi / 2 - lo / 2;
  return span > 0 ? (v / 2 - lo / 2) / span : 0.5;
}

// Round tick values covering [lo, hi] (about five); falls back to the two ends.
std::vector<double> ticks(double lo, double hi, double* step_out) {
  const double raw = (hi / 2 - lo / 2) / 2.5;  // span / 5, without overflow
  *step_out = 0;
  if (!(raw > 0) || !std::isfinite(raw)) return {lo, hi};
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (!(step > 0) || !std::isfinite(step)) return {lo, hi};
  std::vector<double> out;
  for (double k = std::ceil(lo / step); out.size() < 24; k += 1) {
    double v = k * step;
    if (v > hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0" or 1e-17 labels
    out.push_back(v);
  }
  if (out.empty()) return {lo, hi};
  *step_out = step;
  return out;
}

std::string tick_label(double v) {
  std::string s = fmt("%.6g", v);
  return s == "-0" ? "0" : s;
}

std::vector<Panel> make_panels(const std::vector<std::map<std::string, double>>& rows) {
  std::map<std::string, std::map<std::string, Series>> groups;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    auto step_it = row.find("step");
    const double x = step_it != row.end() && std::isfinite(step_it->second) ? step_it->second : static_cast<double>(i);
    for (const auto& [name, value] : row) {
      if (name == "step" || name == "epoch") continue;
      Series& s = groups[group_of(name)][name];
      s.name = name;
      s.points.emplace_back(x, value);
    }
  }
  std::vector<Panel> panels;
  auto add = [&](const std::string& title, std::map<std::string, Series>& series) {
    Panel p{title, {}};
    for (auto& [name, s] : series) p.series.push_back(std::move(s));
    panels.push_back(std::move(p));
  };
  if (auto it = groups.find("loss"); it != groups.end()) add("loss", it->second);
  for (auto& [title, series] : groups)
    if (title != "loss") add(title, series);
  return panels;
}

// The panel at height y0; every panel shares the step range [xlo, xhi] so that they line up.
void render_panel(const Panel& panel, double y0, double xlo, double xhi, std::string& out) {
  // The value range over the finite points.
  double ylo = INFINITY, yhi = -INFINITY;
  for (const Series& s : panel.series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      ylo = std::min(ylo, y);
      yhi = std::max(yhi, y);
    }
  const bool any = ylo <= yhi;
  if (!any) ylo = 0, yhi = 1;
  widen(ylo, yhi);
  double ystep = 0, xstep = 0;
  std::vector<double> yticks = ticks(ylo, yhi, &ystep);
  if (ystep > 0) {  // snap the value axis to whole ticks
    const double lo = std::floor(ylo / ystep) * ystep, hi = std::ceil(yhi / ystep) * ystep;
    if (std::isfinite(lo) && std::isfinite(hi) && hi > lo) {
      ylo = lo, yhi = hi;
      yticks = ticks(ylo, yhi, &ystep);
    }
  }
  const std::vector<double> xticks = ticks(xlo, xhi, &xstep);
  auto px = [&](double x) { return kLeft + fraction(x, xlo, xhi) * (kRight - kLeft); };
  auto py = [&](double y) { return y0 + kBottom - fraction(y, ylo, yhi) * (kBottom - kTop); };

  out += "<g>\n";
  out += "<text x=\"" + fmt("%.1f", kLeft) + "\" y=\"" + fmt("%.1f", y0 + 22) +
         "\" font-size=\"14\" font-weight=\"bold\">" + xml_escape(panel.title) + "</text>\n";
  out += "<rect x=\"" + fmt("%.1f", kLeft) + "\" y=\"" + fmt("%.1f", y0 + kTop) + "\" width=\"" +
         fmt("%.1f", kRight - kLeft) + "\" height=\"" + fmt("%.1f", kBottom - kTop) +
         "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (double v : yticks) {
    const std::string y = fmt("%.1f", py(v));
    out += "<line x1=\"" + fmt("%.1f", kLeft) + "\" y1=\"" + y + "\" x2=\"" + fmt("%.1f", kRight) + "\" y2=\"" + y +
           "\" stroke=\"#e5e5e5\"/>\n";
    out += "<text x=\"" + fmt("%.1f", kLeft - 6) + "\" y=\"" + fmt("%.1f", py(v) + 4) + "\" text-anchor=\"end\">" +
           tick_label(v) + "</text>\n";
  }
  for (double v : xticks) {
    const std::string x = fmt("%.1f", px(v));
    out += "<line x1=\"" + x + "\" y1=\"" + fmt("%.1f", y0 + kBottom) + "\" x2=\"" + x + "\" y2=\"" +
           fmt("%.1f", y0 + kBottom + 5) + "\" stroke=\"#888\"/>\n";
    out += "<text x=\"" + x + "\" y=\"" + fmt("%.1f", y0 + kBottom + 18) + "\" text-anchor=\"middle\">" +
           tick_label(v) + "</text>\n";
  }
  out += "<text x=\"" + fmt("%.1f", (kLeft + kRight) / 2) + "\" y=\"" + fmt("%.1f", y0 + kBottom + 36) +
         "\" text-anchor=\"middle\">step</text>\n";
  if (!any)
    out += "<text x=\"" + fmt("%.1f", (kLeft + kRight) / 2) + "\" y=\"" + fmt("%.1f", y0 + (kTop + kBottom) / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no finite values</text>\n";

  for (size_t i = 0; i < panel.series.size(); ++i) {
    const Series& s = panel.series[i];
    const std::string color = kColors[i % std::size(kColors)];
    const std::string dash = is_eval_series(s.name) ? " stroke-dasharray=\"6 3\"" : "";
    const std::string title = "<title>" + xml_escape(s.name) + "</title>";
    // Runs of finite values become polylines; a run of one point becomes a dot.
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      if (run.size() == 1) {
        out += "<circle cx=\"" + fmt("%.1f", px(run[0].first)) + "\" cy=\"" + fmt("%.1f", py(run[0].second)) +
               "\" r=\"3\" fill=\"" + color + "\">" + title + "</circle>\n";
      } else if (run.size() > 1) {
        out += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\"" + dash + " points=\"";
        for (size_t k = 0; k < run.size(); ++k) {
          if (k) out += ' ';
          out += fmt("%.1f", px(run[k].first)) + "," + fmt("%.1f", py(run[k].second));
        }
        out += "\">" + title + "</polyline>\n";
      }
      run.clear();
    };
    for (auto [x, y] : s.points) {
      if (std::isfinite(y)) {
        run.emplace_back(x, y);
      } else {
        flush();
      }
    }
    flush();

    // Legend entry, right of the plot.
    const double ly = y0 + kTop + 8 + 18 * static_cast<double>(i);
    std::string label = s.name;
    if (label.size() > kMaxLegendChars) label = label.substr(0, kMaxLegendChars - 3) + "...";
    out += "<line x1=\"" + fmt("%.1f", kRight + 16) + "\" y1=\"" + fmt("%.1f", ly) + "\" x2=\"" +
           fmt("%.1f", kRight + 40) + "\" y2=\"" + fmt("%.1f", ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
           dash + "/>\n";
    out += "<text x=\"" + fmt("%.1f", kRight + 46) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" + xml_escape(label) +
           title + "</text>\n";
  }
  out += "</g>\n";
}

}  // namespace

std::string render_metrics_svg(const std::vector<std::map<std::string, double>>& rows) {
  std::vector<Panel> panels = make_panels(rows);
  if (panels.empty()) panels.push_back(Panel{"metrics", {}});
  double xlo = INFINITY, xhi = -INFINITY;
  for (const Panel& p : panels)
    for (const Series& s : p.series)
      for (auto [x, y] : s.points)
        if (std::isfinite(y)) xlo = std::min(xlo, x), xhi = std::max(xhi, x);
  if (!(xlo <= xhi)) xlo = 0, xhi = 1;
  widen(xlo, xhi);
  const double height = kPanelHeight * static_cast<double>(panels.size());
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", kWidth) + "\" height=\"" +
         fmt("%.0f", height) + "\" viewBox=\"0 0 " + fmt("%.0f", kWidth) + " " + fmt("%.0f", height) +
         "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < panels.size(); ++i)
    render_panel(panels[i], kPanelHeight * static_cast<double>(i), xlo, xhi, out);
  out += "</svg>\n";
  return out;
}

void write_metrics_svg(const std::string& path, const std::vector<std::map<std::string, double>>& rows) {
  logger_util::write_file_atomic(path, render_metrics_svg(rows), "write_metrics_svg");
}

}  // namespace ember::train
