import type { Config } from '../config.ts';
import { createOfflineProvider } from './offline.ts';
import { createOpenAiProvider } from './openai.ts';
import type { AiProvider } from './provider.ts';

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
      return createOpenAiProvider({
        baseUrl: config.OPENAI_BASE_URL!,
        apiKey: config.OPENAI_API_KEY,
        model: config.AI_MODEL!,
        timeoutMs: config.AI_TIMEOUT_MS,
      });
  }
}
