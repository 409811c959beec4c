import { describe, expect, expectTypeOf, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Actions } from '../src/client/actions.gen.ts';
import type { Call } from '../src/client/index.ts';
import type { Registry } from '../src/resources/index.ts';
import { clientTypes } from '../scripts/client-types.ts';

// The client's types are generated (scripts/client-types.ts) as plain TypeScript, so that its .d.ts stands alone.
// Here, at compile time (`npm run typecheck`), they must say exactly what the registry's zod schemas say.

/** Each assignable to the other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Generated<R, A> = R extends keyof Actions ? (A extends keyof Actions[R] ? Actions[R][A] : never) : never;
type Agreement = {
  [R in keyof Registry]: {
    [A in keyof Registry[R]]: Generated<R, A> extends { input: infer I; output: infer O }
      ? [Same<Registry[R][A]['input'], I>, Same<Registry[R][A]['output'], O>]
      : 'missing';
  };
};
type AllAgree = { [R in keyof Registry]: { [A in keyof Registry[R]]: [true, true] } };

describe('the client types', () => {
  it('agree with the registry, action by action, inputs and answers', () => {
    expectTypeOf<Agreement>().toEqualTypeOf<AllAgree>();
    expectTypeOf<keyof Actions>().toEqualTypeOf<keyof Registry>();
    expectTypeOf<keyof Actions['goals']>().toEqualTypeOf<keyof Registry['goals']>();
  });

  it('make a call exactly what the action takes', () => {
    expectTypeOf<{ resource: 'goals'; action: 'get'; id: string }>().toExtend<Call<'goals', 'get'>>();
    expectTypeOf<{ resource: 'goals'; action: 'get' }>().not.toExtend<Call<'goals', 'get'>>();
    expectTypeOf<{ resource: 'goals'; action: 'create' }>().not.toExtend<Call<'goals', 'create'>>();
    expectTypeOf<{ resource: 'goals'; action: 'list' }>().toExtend<Call<'goals', 'list'>>();
  });

  it('are what scripts/client-types.ts generates today (run `npm run client:types` after changing a schema)', async () => {
    const committed = readFileSync(new URL('../src/client/actions.gen.ts', import.meta.url), 'utf8');
    expect(committed === (await clientTypes()), 'src/client/actions.gen.ts is stale: run `npm run client:types`').toBe(true);
  });
});
