/**
 * Scores goal suggestions against expected lead fields, key-insensitively: a produced field counts as
 * right when an expected field of the same type is left to match it (per case, the multiset
 * intersection of types). Keys and labels are matched only to pair fields for the secondary figures
 * (required flags, select options), never to decide whether a field counts.
 */

export interface ExpectedField {
  key?: string;
  type: string;
  required?: boolean;
  options?: string[];
}

export interface ExpectedMetric {
  goal_type: string;
  target_value: number;
  unit?: string | null;
}

export interface ScoreCase {
  description: string;
  fields: ExpectedField[];
  metric: ExpectedMetric | null;
}

export interface ProducedSuggestion {
  lead_fields?: { key: string; label?: string; type: string; required?: boolean; options?: string[] }[];
  goal_type?: string;
  target_value?: number | null;
  unit?: string | null;
}

export interface CaseScore {
  description: string;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  missing: ExpectedField[];
  extra: { key: string; type: string }[];
  requiredAgreements: number;
  pairs: number;
  optionPairs: number;
  optionAgreements: number;
  metric: 'hit' | 'wrong' | 'missed' | 'spurious' | 'none';
}

export interface Score {
  cases: CaseScore[];
  precision: number;
  recall: number;
  f1: number;
  /** Of matched pairs, how often `required` agrees (expected required unless marked false). */
  requiredAccuracy: number;
  /** Of matched select pairs, how often the option sets agree (case-insensitive). */
  optionAccuracy: number;
  metricPrecision: number;
  metricRecall: number;
}

const tokens = (key: string | undefined) => new Set((key ?? '').toLowerCase().split(/[^a-z0-9]+/).filter(Boolean));

function similarity(a: string | undefined, b: string | undefined): number {
  const x = tokens(a);
  const y = tokens(b);
  if (x.size === 0 || y.size === 0) return 0;
  let shared = 0;
  for (const t of x) if (y.has(t)) shared++;
  return shared / (x.size + y.size - shared);
}

export function scoreCase(expected: ScoreCase, produced: ProducedSuggestion): CaseScore {
  const made = produced.lead_fields ?? [];
  const unmatchedMade = new Set(made.map((_, i) => i));
  const missing: ExpectedField[] = [];
  let pairs = 0;
  let requiredAgreements = 0;
  let optionPairs = 0;
  let optionAgreements = 0;
  let truePositives = 0;
  // Pair each expected field with the most similar produced field of the same type.
  const order = [...expected.fields].sort((a, b) => (a.key ? 0 : 1) - (b.key ? 0 : 1));
  for (const want of order) {
    let best = -1;
    let bestScore = -1;
    for (const i of unmatchedMade) {
      const field = made[i]!;
      if (field.type !== want.type) continue;
      const s = similarity(want.key, field.key);
      if (s > bestScore) {
        best = i;
        bestScore = s;
      }
    }
    if (best < 0) {
      missing.push(want);
      continue;
    }
    unmatchedMade.delete(best);
    truePositives++;
    pairs++;
    const got = made[best]!;
    if ((want.required ?? true) === (got.required ?? false)) requiredAgreements++;
    if (want.type === 'select' && want.options) {
      optionPairs++;
      const norm = (o: string[] | undefined) => (o ?? []).map((x) => x.trim().toLowerCase()).sort().join('|');
      if (norm(want.options) === norm(got.options)) optionAgreements++;
    }
  }
  const expectsMetric = expected.metric !== null;
  const producesMetric = produced.target_value !== undefined && produced.target_value !== null;
  let metric: CaseScore['metric'] = 'none';
  if (expectsMetric && producesMetric) metric = produced.target_value === expected.metric!.target_value ? 'hit' : 'wrong';
  else if (expectsMetric) metric = 'missed';
  else if (producesMetric) metric = 'spurious';
  return {
    description: expected.description,
    truePositives,
    falsePositives: unmatchedMade.size,
    falseNegatives: missing.length,
    missing,
    extra: [...unmatchedMade].map((i) => ({ key: made[i]!.key, type: made[i]!.type })),
    requiredAgreements,
    pairs,
    optionPairs,
    optionAgreements,
    metric,
  };
}

/** Micro-averaged over every field of every case. */
export function scoreAll(cases: ScoreCase[], produce: (description: string) => ProducedSuggestion): Score {
  const scored = cases.map((c) => scoreCase(c, produce(c.description)));
  const sum = (f: (c: CaseScore) => number) => scored.reduce((a, c) => a + f(c), 0);
  const tp = sum((c) => c.truePositives);
  const fp = sum((c) => c.falsePositives);
  const fn = sum((c) => c.falseNegatives);
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 1 : tp / (tp + fn);
  const metricHits = scored.filter((c) => c.metric === 'hit').length;
  const metricProduced = scored.filter((c) => c.metric === 'hit' || c.metric === 'wrong' || c.metric === 'spurious').length;
  const metricExpected = scored.filter((c) => c.metric === 'hit' || c.metric === 'wrong' || c.metric === 'missed').length;
  return {
    cases: scored,
    precision,
    recall,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    requiredAccuracy: sum((c) => c.pairs) === 0 ? 1 : sum((c) => c.requiredAgreements) / sum((c) => c.pairs),
    optionAccuracy: sum((c) => c.optionPairs) === 0 ? 1 : sum((c) => c.optionAgreements) / sum((c) => c.optionPairs),
    metricPrecision: metricProduced === 0 ? 1 : metricHits / metricProduced,
    metricRecall: metricExpected === 0 ? 1 : metricHits / metricExpected,
  };
}
