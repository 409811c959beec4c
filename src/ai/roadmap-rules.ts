import type { GoalType, LeadFieldType } from '../db/schema.ts';

/** Milestones and what each depends on, as the rules plan them (goals.generate-roadmap validates and lays them out). */
export interface PlannedRoadmap {
  milestones: { id: string; label: string; depends_on: string[] }[];
}

/**
 * The goal as a roadmap generator sees it: what it is, what its agent collects, how it is measured and
 * when it is due.
 */
export interface RoadmapGoal {
  name: string;
  description: string | null;
  lead_fields: { key: string; label: string; type: LeadFieldType; required: boolean }[];
  goal_type: GoalType;
  target_value: number | null;
  current_value: number;
  min_value: number;
  max_value: number;
  unit: string | null;
  /** ISO 8601, or null. */
  target_date: string | null;
  /** ISO 8601: where dated checkpoints start. */
  created_at: string;
}

const MAX_LABEL = 200;
const MAX_PHRASES = 5;

/**
 * The offline provider's roadmap: rules, deterministic — the same goal and instructions always give
 * the same milestones. A kick-off, then parallel streams that each come from something the goal says,
 * then one final milestone that waits for all of them:
 *
 * - the steps its description names ("Master ML fundamentals and build 3 projects" → two milestones);
 * - its lead fields: script the questions, collect each group of fields (contact details,
 *   qualification, scheduling, other details), check the required ones;
 * - its metric target: checkpoints at a quarter, half and three quarters of the way from the current
 *   value, then the target itself;
 * - the caller's `instructions`, one milestone per sentence.
 *
 * With a `target_date`, the checkpoints and the final milestone carry dates spread evenly from the
 * goal's creation to it.
 *
 * @example planRoadmap({ name: 'Book demos', goal_type: 'numeric', target_value: 20, current_value: 0, unit: 'demos', … })
 * // → Kick off → Reach 5 demos → Reach 10 demos → Reach 15 demos → Reach 20 demos → Done
 */
export function planRoadmap(goal: RoadmapGoal, instructions?: string): PlannedRoadmap {
  const milestones: PlannedRoadmap['milestones'] = [];
  const add = (label: string, dependsOn: string[]): string => {
    const id = `m${milestones.length + 1}`;
    milestones.push({ id, label: clip(label), depends_on: dependsOn });
    return id;
  };
  const name = goal.name.trim();
  const dates = dateScale(goal.created_at, goal.target_date);

  const kickoff = add(`Kick off "${name}": agree what done looks like`, []);
  /** Each stream ends in one milestone the final one waits for. */
  const ends: string[] = [];
  /** A stream of steps one after another; with a target date, step i of n is due i/(n+1) of the way. */
  const chain = (labels: string[], from: string, options: { dated: boolean }) => {
    let previous = from;
    labels.forEach((label, i) => {
      const due = options.dated && dates ? ` by ${dates((i + 1) / (labels.length + 1))}` : '';
      previous = add(`${label}${due}`, [previous]);
    });
    if (previous !== from) ends.push(previous);
  };

  // The description's steps, unless lead fields say better what the agent does.
  if (goal.lead_fields.length === 0) chain(phrases(goal.description ?? ''), kickoff, { dated: true });

  if (goal.lead_fields.length > 0) {
    const script = add(`Write the questions that collect ${listOf(goal.lead_fields.map((f) => f.label), 4)}`, [kickoff]);
    const collected = fieldGroups(goal.lead_fields).map((group) =>
      add(`Collect ${group.title}: ${listOf(group.fields.map((f) => f.label), 5)}`, [script]),
    );
    const required = goal.lead_fields.filter((f) => f.required).map((f) => f.label);
    if (required.length > 0) ends.push(add(`Check every lead has ${listOf(required, 4)}`, collected));
    else ends.push(...collected);
  }

  const checkpoints = metricCheckpoints(goal);
  chain(
    checkpoints.map((value, i) => {
      const last = i === checkpoints.length - 1;
      const verb = last ? 'Hit the target of' : value < goal.current_value ? 'Get down to' : 'Reach';
      return `${verb} ${formatValue(value)}${goal.unit ? ` ${goal.unit}` : ''}`;
    }),
    kickoff,
    { dated: true },
  );

  if (ends.length === 0) {
    // The goal says nothing but its name: a plain plan, still about this goal.
    chain([`Plan the steps towards "${name}"`, 'Gather what the plan needs', 'Work through the plan', 'Review the result'], kickoff, {
      dated: true,
    });
  }

  chain(phrases(instructions ?? ''), kickoff, { dated: false });
  add(`Done: ${name}${dates ? ` by ${dates(1)}` : ''}`, ends.length > 0 ? ends : [kickoff]);
  return { milestones };
}

/**
 * The steps a text names: its sentences, and parts joined by "then", ";" or an "and" between two
 * longer phrases. Short fragments are dropped; at most five.
 */
function phrases(text: string): string[] {
  const parts = text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+|;\s*|,?\s+then\s+|\n/i)
    .flatMap((sentence) => {
      const halves = sentence.split(/\s+and\s+/i);
      return halves.length === 2 && halves.every((h) => words(h) >= 3) ? halves : [sentence];
    })
    .map((p) => p.trim().replace(/^(?:[-*•\d.)\s]+|then\s+)/i, '').replace(/[.!?,:;\s]+$/, ''))
    .filter((p) => words(p) >= 2);
  return [...new Set(parts)].slice(0, MAX_PHRASES).map((p) => p.charAt(0).toUpperCase() + p.slice(1));
}

const words = (text: string) => text.trim().split(/\s+/).filter(Boolean).length;

const GROUPS: { title: string; test: (f: RoadmapGoal['lead_fields'][number]) => boolean }[] = [
  {
    title: 'contact details',
    test: (f) => ['email', 'phone', 'url'].includes(f.type) || /name|address|company|city|country|zip|postcode/.test(f.key),
  },
  { title: 'scheduling', test: (f) => f.type === 'date' || f.type === 'datetime' || /time|slot|availability/.test(f.key) },
  { title: 'qualification', test: (f) => ['number', 'select', 'boolean'].includes(f.type) },
  { title: 'other details', test: () => true },
];

/** Lead fields by group, in the groups' order; each field in the first group that takes it. */
function fieldGroups(fields: RoadmapGoal['lead_fields']) {
  const groups = GROUPS.map((g) => ({ title: g.title, fields: [] as RoadmapGoal['lead_fields'] }));
  for (const field of fields) groups[GROUPS.findIndex((g) => g.test(field))]!.fields.push(field);
  return groups.filter((g) => g.fields.length > 0);
}

/** Values a quarter, half, three quarters of the way from current to target, then the target; none without one. */
function metricCheckpoints(goal: RoadmapGoal): number[] {
  if (goal.target_value === null || goal.goal_type === 'boolean') return [];
  const start = goal.current_value;
  const target = goal.target_value;
  if (start === target) return [target];
  const whole = Number.isInteger(start) && Number.isInteger(target);
  const steps = [0.25, 0.5, 0.75].map((share) => {
    const value = start + (target - start) * share;
    return whole ? Math.round(value) : Math.round(value * 10) / 10;
  });
  return [...new Set([...steps, target])].filter((v) => v !== start);
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
}

/** Dates between the goal's creation and its target date, by share of the way; undefined without a target date. */
function dateScale(createdAt: string, targetDate: string | null): ((share: number) => string) | undefined {
  if (!targetDate) return undefined;
  const from = Date.parse(createdAt);
  const to = Date.parse(targetDate);
  if (!Number.isFinite(from) || !Number.isFinite(to)) return undefined;
  const start = Math.min(from, to);
  return (share) => new Date(start + (to - start) * share).toISOString().slice(0, 10);
}

function listOf(items: string[], max: number): string {
  const shown = items.slice(0, max);
  const rest = items.length - shown.length;
  if (rest > 0) return `${shown.join(', ')} and ${rest} more`;
  if (shown.length <= 1) return shown.join('');
  return `${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1]}`;
}

function clip(label: string): string {
  const clean = label.replace(/\s+/g, ' ').trim();
  return clean.length <= MAX_LABEL ? clean : `${clean.slice(0, MAX_LABEL - 1).trimEnd()}…`;
}
