import DroverRollout
import Foundation

/// Reads Prometheus's `/api/v1/query` JSON into a `QueryAnswer`: `scalar` → one number; `vector`
/// → its series (`metric` labels, `value[1]`); anything else — an error status, a matrix, a body
/// that is not Prometheus's — is `.error` naming what came back. Values arrive as strings
/// ("NaN", "+Inf" included). Untrusted input: bounded, never trusted to be well-formed.
enum PrometheusAnswer {
  static let maxSeries = 10_000

  static func parse(status: Int, body: [UInt8]) -> QueryAnswer {
    guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
      return .error("HTTP \(status): the answer is not Prometheus JSON (\(String(decoding: body.prefix(120), as: UTF8.self)))")
    }
    guard object["status"] as? String == "success", status == 200 else {
      let kind = object["errorType"] as? String ?? "error"
      let message = object["error"] as? String ?? "no message"
      return .error("HTTP \(status): \(kind): \(String(message.prefix(300)))")
    }
    guard let data = object["data"] as? [String: Any], let type = data["resultType"] as? String else {
      return .error("the answer has no data.resultType")
    }
    switch type {
    case "scalar":
      guard let pair = data["result"] as? [Any], pair.count == 2, let x = number(pair[1]) else { return .error("a scalar without a value") }
      return .scalar(x)
    case "vector":
      guard let items = data["result"] as? [[String: Any]] else { return .error("a vector without a result list") }
      guard items.count <= maxSeries else { return .error("\(items.count) series, more than \(maxSeries)") }
      var series: [QueryAnswer.Series] = []
      for item in items {
        guard let pair = item["value"] as? [Any], pair.count == 2, let x = number(pair[1]) else { return .error("a series without a value") }
        let labels = (item["metric"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
        series.append(QueryAnswer.Series(labels: labels, value: x))
      }
      return .vector(series)
    default:
      return .error("a \(type) answer; a gate's query must be an instant vector or a scalar")
    }
  }

  /// Prometheus writes sample values as strings: "0.5", "NaN", "+Inf", "-Inf".
  static func number(_ any: Any) -> Double? {
    guard let text = any as? String else { return nil }
    switch text {
    case "NaN": return .nan
    case "+Inf", "Inf": return .infinity
    case "-Inf": return -.infinity
    default: return Double(text)
    }
  }
}
