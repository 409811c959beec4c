import { z } from 'zod';
import { goalStatuses, goalTypes, leadFieldTypes, type LeadField } from '../../db/schema.ts';
import { isoDateTime, patchOf, uuid } from '../../lib/zod.ts';
import { pageFields } from '../pagination.ts';
import { pageOutput, recordId, timestamp, withOwner } from '../outputs.ts';
import { roadmapId, roadmapSchema, MAX_ROADMAP_NODES } from '../roadmaps/graph.ts';

export { goalStatuses, goalTypes, leadFieldTypes };

// Metric values are finite and of a sane magnitude (double precision holds them exactly enough).
const metricNumber = z.number().min(-1e12).max(1e12);

export const leadField = z
  .strictObject({
    key: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,63}$/, 'must start with a-z and hold only a-z, 0-9 and _ (at most 64)')
      .describe('Machine name, unique in the goal: `^[a-z][a-z0-9_]{0,63}$`.'),
    label: z.string().trim().min(1).max(200),
    type: z.enum(leadFieldTypes),
    required: z.boolean().default(false).describe('Defaults to false.'),
    description: z.string().max(1000).optional(),
    options: z.array(z.string().trim().min(1).max(200)).min(1).max(100).optional().describe('Only and always for `select`.'),
  })
  .superRefine((field, ctx) => {
    if (field.type === 'select' && !field.options) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'a select field needs options' });
    }
    if (field.type !== 'select' && field.options) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'options are only for select fields' });
    }
    if (field.options && new Set(field.options).size !== field.options.length) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'options must be unique' });
    }
  });

// The stored type (db/schema.ts) and this schema's output are one shape: a drift fails the typecheck.
leadField satisfies z.ZodType<LeadField>;

export const leadFields = z
  .array(leadField)
  .max(50)
  .superRefine((fields, ctx) => {
    const seen = new Set<string>();
    fields.forEach((field, index) => {
      if (seen.has(field.key)) {
        ctx.addIssue({ code: 'custom', path: [index, 'key'], message: `duplicate key "${field.key}"` });
      }
      seen.add(field.key);
    });
  });

/** The fields a client writes, shared by create and update (and by `generate`'s suggestion). */
export const goalWritableFields = {
  name: z.string().trim().min(1).max(500),
  description: z.string().max(5000).nullable(),
  status: z.enum(goalStatuses),
  priority: z.number().int().min(0).max(100).nullable(),
  agent_id: uuid().nullable().describe('The agent that pursues the goal; the active limit counts per agent.'),
  lead_fields: leadFields,
  goal_type: z.enum(goalTypes),
  target_value: metricNumber.nullable(),
  current_value: metricNumber,
  min_value: metricNumber,
  max_value: metricNumber,
  unit: z.string().max(50).nullable(),
  target_date: isoDateTime().nullable(),
  roadmap: roadmapSchema
    .nullable()
    .describe('A graph of milestones (a DAG); progress becomes the share of completed nodes. null removes it.'),
};

export const goalFields = z.object(goalWritableFields);

/** What `goals.create` accepts: any writable field, `name` required, nothing else. */
export const goalCreateInput = goalFields.partial().required({ name: true }).strict();

/**
 * What `goals.generate` suggests: the part of the create input an AI may decide (never the agent, the
 * status or the current value), with `lead_fields` always present. It is a narrowing of
 * `goalCreateInput`, so a valid suggestion is a valid create input as it stands.
 */
export const goalSuggestion = goalCreateInput
  .pick({ name: true, description: true, lead_fields: true, goal_type: true, target_value: true, min_value: true, max_value: true, unit: true })
  .required({ lead_fields: true });
export type GoalSuggestion = z.output<typeof goalSuggestion>;

export const listInput = z.strictObject({
  agentId: uuid().optional().describe('Only goals of this agent.'),
  status: z.enum(goalStatuses).optional(),
  search: z.string().min(1).max(200).optional().describe('Case-insensitive match on name or description.'),
  ...pageFields,
});

export const updateInput = patchOf(
  goalFields.extend({
    expected_updated_at: isoDateTime().optional().describe('Fail with CONFLICT unless the goal still has this updated_at.'),
  }),
  { ignored: ['expected_updated_at'] },
);
export type GoalPatch = Omit<z.output<typeof updateInput>, 'expected_updated_at'>;

export const attachInput = z.strictObject({ goalId: uuid(), agentId: uuid() });
export const detachInput = z.strictObject({ agentId: uuid(), goalId: uuid().optional() });

export const generateInput = z.strictObject({
  description: z
    .string()
    .trim()
    .min(1, 'describe the goal')
    .max(2000, 'at most 2000 characters')
    .describe('What the agent should collect or achieve, in plain words (1–2000 characters).'),
  agentId: uuid()
    .optional()
    .describe('The agent the goal is for: its name and description inform the suggestion, which then carries its `agent_id`.'),
});

export const updateNodeInput = z.strictObject({
  node_id: roadmapId.describe("The node's `id` in the goal's roadmap."),
  completed: z.boolean(),
});

export const convertNodesInput = z.strictObject({
  node_ids: z.array(roadmapId).min(1).max(MAX_ROADMAP_NODES).optional().describe('Only these nodes (default: every node).'),
});

export const generateRoadmapInput = z.strictObject({
  instructions: z
    .string()
    .trim()
    .min(1)
    .max(2000)
    .optional()
    .describe('What the roadmap should take into account, in plain words (1–2000 characters).'),
});

export const HISTORY_DAYS_MAX = 365;

export const historyInput = z.strictObject({
  days: z.number().int().min(1).max(HISTORY_DAYS_MAX).default(30).describe('How many UTC days back, today included: 1–365 (default 30).'),
});

// ---- Answers ----

const leadFieldOutput = z.strictObject({
  key: z.string(),
  label: z.string(),
  type: z.enum(leadFieldTypes),
  required: z.boolean(),
  description: z.string().optional(),
  options: z.array(z.string()).optional(),
}).meta({ id: 'LeadField' });

const roadmapOutput = z.strictObject({
  nodes: z.array(
    z.strictObject({
      id: z.string(),
      label: z.string(),
      completed: z.boolean(),
      position: z.strictObject({ x: z.number(), y: z.number() }),
    }),
  ),
  edges: z.array(z.strictObject({ id: z.string(), source: z.string(), target: z.string() })),
}).meta({ id: 'Roadmap' });

/** A goal as lists answer it: every field but the roadmap. */
export const listedGoalOutput = withOwner(
  z.strictObject({
    id: recordId(),
    agent_id: recordId().nullable(),
    name: z.string(),
    description: z.string().nullable(),
    status: z.enum(goalStatuses),
    is_active: z.boolean().describe('`status` is `active`.'),
    priority: z.number().int().nullable(),
    lead_fields: z.array(leadFieldOutput),
    goal_type: z.enum(goalTypes),
    target_value: z.number().nullable(),
    current_value: z.number(),
    min_value: z.number(),
    max_value: z.number(),
    unit: z.string().nullable(),
    target_date: timestamp().nullable(),
    progress: z.number().min(0).max(100).describe('0–100: the share of completed roadmap nodes, or the metric’s position.'),
    created_at: timestamp(),
    updated_at: timestamp(),
  }),
).meta({ id: 'ListedGoal', description: 'A goal as lists answer it: without its roadmap.' });

/** A goal as get, create and the other single-goal actions answer it: with its roadmap. */
export const goalOutput = listedGoalOutput.extend({ roadmap: roadmapOutput.nullable() }).meta({ id: 'Goal' });

export const goalPageOutput = pageOutput(listedGoalOutput);

export const attachOutput = z.strictObject({
  agent_id: recordId(),
  goal_id: recordId(),
  attached_at: timestamp(),
  replaced_goal_id: recordId().nullable().describe('The goal the agent had attached before, if another one.'),
});

export const detachOutput = z.strictObject({
  agent_id: recordId(),
  goal_id: recordId().nullable(),
  detached: z.boolean().describe('false when nothing (or not that goal) was attached.'),
});

export const historyOutput = withOwner(
  z.strictObject({
    goal_id: recordId(),
    days: z.number().int(),
    points: z.array(
      z.strictObject({
        date: z.iso.date().describe('The UTC day.'),
        progress: z.number(),
        current_value: z.number(),
        status: z.enum(goalStatuses),
      }),
    ),
  }),
);

export const generateOutput = z.strictObject({
  suggestion: goalSuggestion.extend({ agent_id: recordId().optional() }).describe('Valid `goals.create` input as it stands.'),
  provider: z.string(),
  model: z.string(),
  temperature: z.number(),
});
