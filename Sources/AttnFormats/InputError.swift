// A problem with something the user gave us (a data file, a run directory, a prompt, a checkpoint):
// the message names the file, the config field when there is one, what was wrong and what to do.

public struct InputError: Error, CustomStringConvertible {
  public let file: String
  public let field: String?
  public let problem: String
  public let hint: String?

  public init(file: String, field: String? = nil, problem: String, hint: String? = nil) {
    self.file = file
    self.field = field
    self.problem = problem
    self.hint = hint
  }

  public var description: String {
    var message = file
    if let field { message += ": \(field)" }
    message += ": \(problem)"
    if let hint { message += " (\(hint))" }
    return message
  }
}
