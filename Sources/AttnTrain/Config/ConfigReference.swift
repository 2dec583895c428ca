// The README's config reference, generated from the schema's rows so that it cannot drift from what
// the parser accepts: a table per section, the keys a resume must keep, and the renamed keys.
// `attn-train config-reference` prints it, dev/update-config-reference.sh puts it in the README, and a
// test fails when the README differs.

extension Config {
  /// The markdown between the README's config-reference markers.
  public static func referenceMarkdown() -> String {
    var out: [String] = []
    for section in ConfigSchema.sections {
      out += ["### \(section.name)", "", "| key | type | default | meaning and allowed values |", "|---|---|---|---|"]
      for row in section.rows {
        let cells = ["`\(row.key)`", row.type, row.defaultText, row.meaning].map { $0.replacingOccurrences(of: "|", with: "\\|") }
        out.append("| " + cells.joined(separator: " | ") + " |")
      }
      out.append("")
    }

    var fixed: [String] = []
    for section in ConfigSchema.sections {
      let keys = section.rows.filter(\.fixedOnResume).map { "`\(section.name).\($0.key)`" }
      if keys.count == section.rows.count { fixed.append("any `\(section.name).*` key") } else { fixed += keys }
    }
    out += [
      "### Resuming", "",
      "Resuming a run with a changed config is refused when the change alters the model, the data, the sequence of "
        + "batches or the meaning of the saved optimizer state: \(list(fixed, "or")). Every other key may change "
        + "between runs and takes effect from the next step.",
    ]

    let renamed = ConfigSchema.sections.flatMap { section in
      section.rows.flatMap { row in
        row.deprecatedNames.map { "`\(section.name).\($0)` (now `\(section.name).\(row.key)`)" }
      }
    }
    if !renamed.isEmpty {
      out += ["", "### Renamed keys", "", "Older names are still read, with a warning: \(list(renamed, "and"))."]
    }
    return out.joined(separator: "\n") + "\n"
  }
}

private func list(_ items: [String], _ conjunction: String) -> String {
  guard items.count > 1 else { return items.first ?? "" }
  return items.dropLast().joined(separator: ", ") + " \(conjunction) " + items.last!
}
