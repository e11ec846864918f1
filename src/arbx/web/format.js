// Formatting for the dashboard: wei amounts through BigInt only (a wei amount never goes through
// Number, whose 53-bit mantissa would round it), addresses, times and durations.

const WEI_PER_ETH = 10n ** 18n;

/** Parse a decimal wei string (as the API sends amounts) into a BigInt; null when not one. */
export function toBigInt(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "string" && /^-?\d+$/.test(value.trim())) return BigInt(value.trim());
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  return null;
}

/** Wei (decimal string or BigInt) as ETH with `places` decimals, rounded half away from zero. */
export function formatWei(value, places = 6) {
  return formatUnits(value, 18, places);
}

/** An amount in a token's smallest unit as whole tokens (`decimals`) to `places` decimals. */
export function formatUnits(value, decimals = 18, places = 6) {
  const raw = toBigInt(value);
  if (raw === null) return "—";
  const negative = raw < 0n;
  const abs = negative ? -raw : raw;
  const shown = Math.min(places, decimals);
  const unit = 10n ** BigInt(decimals - shown);
  const scaled = unit === 1n ? abs : (abs + unit / 2n) / unit; // in units of 10^-shown tokens
  const scale = 10n ** BigInt(shown);
  const whole = groupThousands((scaled / scale).toString());
  const frac = shown > 0 ? "." + (scaled % scale).toString().padStart(shown, "0") : "";
  const sign = negative && scaled !== 0n ? "−" : "";
  return `${sign}${whole}${frac}`;
}

/** The same with the unit: "1.234567 ETH". */
export function formatEth(value, decimals = 6) {
  const text = formatWei(value, decimals);
  return text === "—" ? text : `${text} ETH`;
}

/** -1, 0 or 1: the sign of a wei amount (0 for a missing one). */
export function weiSign(value) {
  const wei = toBigInt(value);
  if (wei === null || wei === 0n) return 0;
  return wei < 0n ? -1 : 1;
}

/** An ETH amount typed by a person ("0.5", "12", "1.000000000000000001") as wei; null if bad. */
export function parseEthToWei(text) {
  const match = /^\s*(\d*)(?:\.(\d*))?\s*$/.exec(text ?? "");
  if (!match || (match[1] === "" && (match[2] ?? "") === "")) return null;
  const frac = match[2] ?? "";
  if (frac.length > 18) return null;
  return BigInt(match[1] || "0") * WEI_PER_ETH + BigInt(frac.padEnd(18, "0") || "0");
}

/** A wei amount as a plain ETH decimal with no trailing zeros, for form fields ("0.05"). */
export function weiToEthInput(value) {
  const wei = toBigInt(value);
  if (wei === null) return "";
  const negative = wei < 0n;
  const abs = negative ? -wei : wei;
  const frac = (abs % WEI_PER_ETH).toString().padStart(18, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${abs / WEI_PER_ETH}${frac ? "." + frac : ""}`;
}

/** Wei scaled to a float of ETH, for drawing only (never for a number shown as text). */
export function weiToPlot(value) {
  const wei = toBigInt(value);
  if (wei === null) return 0;
  return Number(wei / 10n ** 9n) / 1e9; // gwei precision is plenty for a chart
}

/** A whole number with thousands separators ("1,234,567"); "—" for null. */
export function formatInt(value) {
  if (value === null || value === undefined || value === "") return "—";
  const big = toBigInt(typeof value === "number" ? Math.trunc(value) : value);
  if (big === null) return String(value);
  const negative = big < 0n;
  return (negative ? "−" : "") + groupThousands((negative ? -big : big).toString());
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "0x1234…abcd" for an address or hash. */
export function shortHex(value, keep = 4) {
  if (typeof value !== "string" || value.length <= 2 + keep * 2 + 1) return value ?? "—";
  return `${value.slice(0, 2 + keep)}…${value.slice(-keep)}`;
}

/** Milliseconds as "12.3 ms" or "1.24 s". */
export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "—";
  const value = Number(ms);
  if (value < 1000) return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

/** Seconds as a short age: "4 s", "3 min", "2 h", "5 d". */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const s = Math.max(0, Number(seconds));
  if (s < 90) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** An ISO timestamp as local "YYYY-MM-DD HH:MM:SS"; "—" when missing. */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** "HH:MM:SS" for a time of today, "MM-DD HH:MM:SS" for another day. */
export function formatClock(iso, now = new Date()) {
  const full = formatTime(iso);
  if (full === "—" || full.length <= 10) return full;
  return full.slice(0, 10) === formatTime(now.toISOString()).slice(0, 10) ? full.slice(11) : full.slice(5);
}

/** A percentile (0-100) of a list of numbers, nearest rank; null when empty. */
export function percentile(values, p) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}
