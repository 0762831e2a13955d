// A dependency-free SVG line chart of logged metrics against step (the CSVLogger's metrics.svg).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace ember::train {

// Writes path (atomically) with one panel per metric group: every metric whose name holds "loss" shares
// one panel, the others are grouped by their name without a train/val/test prefix and a _step/_epoch
// suffix (train_acc and val_acc share a panel). Rows are metrics.csv rows ("step" is the x axis; rows
// without it use their index; "epoch" is not drawn). NaN and infinite values leave gaps in the line;
// a single point is drawn as a dot. IOError naming the path when it cannot be written.
void write_metrics_svg(const std::string& path, const std::vector<std::map<std::string, double>>& rows);

// The SVG text itself.
std::string render_metrics_svg(const std::vector<std::map<std::string, double>>& rows);

}  // namespace ember::train
