import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { plainJsonSchema, strictJsonSchema, withoutAddedNulls } from '../src/lib/json-schema.ts';
import { createOfflineProvider } from '../src/ai/offline.ts';
import type { GenerationOptions } from '../src/ai/provider.ts';
import { goalCreateInput, goalSuggestion, type GoalSuggestion } from '../src/resources/goals/schemas.ts';
import { validateSuggestion } from '../src/resources/goals/suggestions.ts';
import { scoreAll, type ScoreCase } from './support/score-suggestions.ts';

// The embedded offline provider, scored on test/fixtures/generate-offline.json: field types matched
// key-insensitively, precision and recall micro-averaged (the README reports the numbers).

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/generate-offline.json', import.meta.url), 'utf8')) as {
  cases: (ScoreCase & { set: string })[];
};

const provider = createOfflineProvider();
const quiet: GenerationOptions = { signal: new AbortController().signal, onProgress: () => {}, stream: false };

/** The provider's answer, validated as goals.generate validates it (the rules' invalid answer is our bug: 500). */
async function suggest(description: string): Promise<GoalSuggestion> {
  return validateSuggestion(await provider.suggestGoal({ description, schema: goalSuggestion }, quiet), 'INTERNAL_ERROR');
}

async function scoreSet(cases: ScoreCase[]) {
  const produced = new Map<string, GoalSuggestion>();
  for (const c of cases) produced.set(c.description, await suggest(c.description));
  return scoreAll(cases, (description) => produced.get(description)!);
}

describe('offline provider on the fixture set', () => {
  it('holds at least 40 varied descriptions, each with expected fields', () => {
    expect(fixtures.cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(fixtures.cases.map((c) => c.description)).size).toBe(fixtures.cases.length);
    const types = new Set(fixtures.cases.flatMap((c) => c.fields.map((f) => f.type)));
    expect([...types].sort()).toEqual(['boolean', 'date', 'datetime', 'email', 'number', 'phone', 'select', 'text', 'url']);
  });

  it('reaches the precision and recall floor on field types, overall and per set', async () => {
    const overall = await scoreSet(fixtures.cases);
    const report = (s: Awaited<ReturnType<typeof scoreSet>>) => ({ precision: s.precision.toFixed(3), recall: s.recall.toFixed(3) });
    const misses = overall.cases.filter((c) => c.falsePositives + c.falseNegatives > 0).map((c) => ({ description: c.description, missing: c.missing, extra: c.extra }));
    // Printed so a failing run shows what regressed (and the README's numbers can be refreshed).
    console.info('offline provider, all fixtures:', report(overall), 'misses:', JSON.stringify(misses));
    expect(overall.precision).toBeGreaterThanOrEqual(0.95);
    expect(overall.recall).toBeGreaterThanOrEqual(0.95);
    for (const set of new Set(fixtures.cases.map((c) => c.set))) {
      const score = await scoreSet(fixtures.cases.filter((c) => c.set === set));
      console.info(`offline provider, ${set}:`, report(score));
      expect(score.precision, set).toBeGreaterThanOrEqual(0.9);
      expect(score.recall, set).toBeGreaterThanOrEqual(0.9);
    }
    expect(overall.requiredAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(overall.optionAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(overall.metricPrecision).toBeGreaterThanOrEqual(0.9);
    expect(overall.metricRecall).toBeGreaterThanOrEqual(0.9);
  });

  it('answers a valid goals.create input for every fixture, with a short name', async () => {
    for (const c of fixtures.cases) {
      const suggestion = await suggest(c.description);
      expect(goalCreateInput.safeParse(suggestion).success, c.description).toBe(true);
      expect(suggestion.name.length, c.description).toBeLessThanOrEqual(60);
      expect(suggestion.description).toBe(c.description.trim());
    }
  });

  it('reads the metric a text implies, and none where it implies none', async () => {
    expect(await suggest('Book 20 demos this month')).toMatchObject({ goal_type: 'numeric', target_value: 20, unit: 'demos' });
    expect(await suggest('Goal: sign up twenty new members per week. Ask for email.')).toMatchObject({ target_value: 20, unit: 'new members' });
    expect(await suggest('Raise $1.5k for the shelter; collect donor name')).toMatchObject({ target_value: 1500, unit: 'USD' });
    expect(await suggest('Reach a satisfaction score of 8 out of 10')).toMatchObject({ goal_type: 'scale', target_value: 8, min_value: 0, max_value: 10 });
    const none = await suggest('Collect name, party size (1-20) and email');
    expect(none.goal_type).toBeUndefined();
    expect(none.target_value).toBeUndefined();
  });

  it('names the scoring floor so it can fail: a provider that answers nothing scores zero recall', () => {
    const empty = scoreAll(fixtures.cases, () => ({ lead_fields: [] }));
    expect(empty.recall).toBe(0);
    const allText = scoreAll(fixtures.cases, (d) => ({ lead_fields: fixtures.cases.find((c) => c.description === d)!.fields.map((f, i) => ({ key: `f${i}`, type: 'text' })) }));
    expect(allText.precision).toBeLessThan(0.6);
  });

  it('reports its stages as progress events', async () => {
    const events: unknown[] = [];
    await provider.suggestGoal({ description: 'Collect email', schema: goalSuggestion }, { ...quiet, onProgress: (e) => events.push(e) });
    // `validated` follows from goals.generate once it has validated the answer (test/generate.test.ts).
    expect(events).toEqual([
      { stage: 'reading', provider: 'offline', model: provider.model, characters: 13 },
      { stage: 'fields', fields: [{ key: 'email', type: 'email', required: true }] },
      { stage: 'metric', metric: null },
    ]);
  });
});

describe('offline provider on arbitrary input', () => {
  const vocabulary = [
    'collect', 'ask for', 'whether they', 'name', 'email', 'phone', 'budget', 'date', 'time', 'optional', '(a, b or c)',
    '(yes/no)', 'book 20 demos', 'and', 'or', ',', '.', ':', '?', 'how many', 'their', 'website', 'city', '$5k', '—', '\n- ',
    'if they have one', 'first and last name', 'plan (basic, pro, enterprise)', 'Ünïcödé', '🙂', '"quoted"', '#', '_', '1.', 'x'.repeat(70),
  ];
  const soup = fc.array(fc.constantFrom(...vocabulary), { minLength: 1, maxLength: 120 }).map((words) => words.join(' ').slice(0, 2000));
  const anything = fc.string({ minLength: 1, maxLength: 2000, unit: 'binary' });

  it('always answers a valid goals.create input, quickly, for word soup and random text', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(soup, anything), async (description) => {
        if (description.trim() === '') return;
        const started = performance.now();
        const suggestion = await suggest(description.trim());
        expect(performance.now() - started).toBeLessThan(500);
        expect(goalCreateInput.safeParse(suggestion).success).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('the JSON Schema sent for structured output', () => {
  const strict = strictJsonSchema(goalSuggestion);

  it('lists every property as required and allows no others, at every level (strict mode)', () => {
    const visit = (node: any) => {
      if (node && typeof node === 'object') {
        if (node.properties) {
          expect(node.required).toEqual(Object.keys(node.properties));
          expect(node.additionalProperties).toBe(false);
        }
        Object.values(node).forEach(visit);
      }
    };
    visit(strict);
    expect(strict.properties).toHaveProperty('lead_fields');
  });

  it('lets optional properties be null, and drops those nulls again from an answer', () => {
    const answer = {
      name: 'X',
      description: null,
      lead_fields: [{ key: 'plan', label: 'Plan', type: 'select', required: null, description: null, options: ['a'] }],
      goal_type: null,
      target_value: null,
      min_value: null,
      max_value: null,
      unit: null,
    };
    const cleaned = withoutAddedNulls(answer, plainJsonSchema(goalSuggestion));
    // description, target_value and unit may be null in the create schema itself, so they stay.
    expect(cleaned).toEqual({
      name: 'X',
      description: null,
      lead_fields: [{ key: 'plan', label: 'Plan', type: 'select', options: ['a'] }],
      target_value: null,
      unit: null,
    });
    expect(goalSuggestion.parse(cleaned).lead_fields[0]!.required).toBe(false);
  });
});
