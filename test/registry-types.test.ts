import { describe, expectTypeOf, it } from 'vitest';
import type { Registry } from '../src/resources/index.ts';

// Compile-time checks (run by `npm run typecheck` and vitest's type inference): the Registry type
// gives a typed client every action's input and output without restating a schema.
describe('Registry type', () => {
  it('exposes the input of goals.create from its zod schema', () => {
    type Input = Registry['goals']['create']['input'];
    expectTypeOf<Input>().toHaveProperty('name').toEqualTypeOf<string>();
    expectTypeOf<{ name: 'x'; priority: 3 }>().toExtend<Input>();
    expectTypeOf<{ priority: 3 }>().not.toExtend<Input>();
  });

  it('exposes the output of goals.get and agents.list', () => {
    expectTypeOf<Registry['goals']['get']['output']['progress']>().toEqualTypeOf<number>();
    expectTypeOf<Registry['goals']['get']['output']['status']>().toEqualTypeOf<'active' | 'inactive' | 'completed' | 'abandoned'>();
    expectTypeOf<Registry['agents']['list']['output']['items'][number]['attached_goal_id']>().toEqualTypeOf<string | null>();
    expectTypeOf<Registry['api-keys']['create']['output']['key']>().toEqualTypeOf<string | undefined>();
  });
});
