import { z } from 'zod';
import { isoDateTime, onlyIfValid, patchOf, uuid } from '../../lib/zod.ts';
import { pageFields } from '../pagination.ts';
import { pageOutput, recordId, timestamp, withOwner } from '../outputs.ts';

const datetime = isoDateTime();

/** The fields a client writes, shared by create, batch-create and update. */
export const itemFields = z.object({
  description: z.string().trim().min(1).max(500),
  completed: z.boolean().describe('Completing sets `completed_at`; reopening clears it.'),
  due_at: datetime.nullable().describe('When the item is due. A future date on an open item schedules an `action_item.due` event to your webhooks at that time (moved when it changes, cancelled when the item is completed or deleted).'),
  conversation_id: z
    .string()
    .min(1)
    .max(200)
    .nullable()
    .describe("The conversation the item came from, an opaque id of the caller's own system."),
  goal_id: uuid().nullable().describe('A goal of yours the item moves forward.'),
  roadmap_node_id: z
    .string()
    .min(1)
    .max(200)
    .nullable()
    .describe("A node of that goal's roadmap; completing or reopening the item completes or reopens the node."),
});

export const createInput = itemFields
  .partial()
  .required({ description: true })
  .strict()
  .refine((item) => !item.roadmap_node_id || item.goal_id, {
    path: ['roadmap_node_id'],
    message: 'a roadmap node needs its goal_id',
    when: onlyIfValid,
  });

export const batchCreateInput = z.strictObject({
  action_items: z.array(createInput).min(1).max(50, 'at most 50 action items per batch'),
});

export const listInput = z
  .strictObject({
    completed: z.boolean().optional(),
    goalId: uuid().optional().describe('Only items linked to this goal.'),
    dueBefore: datetime.optional().describe('Only items due before this time.'),
    dueAfter: datetime.optional().describe('Only items due at or after this time.'),
    ...pageFields,
  })
  .refine((d) => !d.dueBefore || !d.dueAfter || new Date(d.dueAfter) < new Date(d.dueBefore), {
    path: ['dueAfter'],
    message: 'dueAfter must be before dueBefore',
    when: onlyIfValid,
  });

export const updateInput = patchOf(itemFields);

export type CreateInput = z.output<typeof createInput>;
export type UpdateInput = z.output<typeof updateInput>;

// ---- Answers ----

export const actionItemOutput = withOwner(
  z.strictObject({
    id: recordId(),
    description: z.string(),
    completed: z.boolean(),
    due_at: timestamp().nullable(),
    completed_at: timestamp().nullable(),
    conversation_id: z.string().nullable(),
    goal_id: recordId().nullable(),
    roadmap_node_id: z.string().nullable(),
    created_at: timestamp(),
    updated_at: timestamp(),
  }),
).meta({ id: 'ActionItem' });

export const actionItemPageOutput = pageOutput(actionItemOutput);

/** What batch-create (and `goals.convert-nodes`) answers: the items created, in order. */
export const createdItemsOutput = z.strictObject({
  action_items: z.array(actionItemOutput),
  created_count: z.number().int().min(0),
});
