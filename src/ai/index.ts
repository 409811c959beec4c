import type { Config } from '../config.ts';
import { createOfflineProvider } from './offline.ts';
import type { OpenAiProviderOptions } from './openai.ts';
import { GENERATION_TEMPERATURE, type AiProvider } from './provider.ts';

export type { AiProvider, GenerationOptions, GoalSuggestionRequest } from './provider.ts';

/**
 * The provider `AI_PROVIDER` names: `offline` (the default, rules, no network) or `openai` (any
 * OpenAI-compatible server at `OPENAI_BASE_URL`). `loadConfig` has already checked that `openai` comes
 * with a base URL and a model.
 *
 * @example const ai = createAiProvider(loadConfig());
 */
export function createAiProvider(
  config: Pick<Config, 'AI_PROVIDER' | 'OPENAI_BASE_URL' | 'OPENAI_API_KEY' | 'AI_MODEL' | 'AI_TIMEOUT_MS'>,
): AiProvider {
  switch (config.AI_PROVIDER) {
    case 'offline':
      return createOfflineProvider();
    case 'openai':
      return lazyOpenAiProvider({
        baseUrl: config.OPENAI_BASE_URL!,
        apiKey: config.OPENAI_API_KEY,
        model: config.AI_MODEL!,
        timeoutMs: config.AI_TIMEOUT_MS,
      });
  }
}

/**
 * The OpenAI-compatible provider, with `./openai.ts` (and the `openai` SDK under it, megabytes of RSS) imported
 * on the first generation: a server with the offline provider, the default, never loads it.
 */
function lazyOpenAiProvider(options: OpenAiProviderOptions): AiProvider {
  let provider: Promise<AiProvider> | undefined;
  const load = () => (provider ??= import('./openai.ts').then((module) => module.createOpenAiProvider(options)));
  return {
    name: 'openai',
    model: options.model,
    temperature: GENERATION_TEMPERATURE,
    suggestGoal: async (request, generation) => (await load()).suggestGoal(request, generation),
    suggestRoadmap: async (request, generation) => (await load()).suggestRoadmap(request, generation),
  };
}
