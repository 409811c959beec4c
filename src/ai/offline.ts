import { GENERATION_TEMPERATURE, ProviderError, type AiProvider } from './provider.ts';
import { recognise } from './recognise.ts';
import { planRoadmap } from './roadmap-rules.ts';

/** Bumped whenever the rules change what they answer, so a suggestion says which rules made it. */
export const OFFLINE_MODEL = 'goalpost-rules-1';

/**
 * The embedded default: reads the description with rules (src/ai/recognise.ts), offline and
 * deterministic — the same description always gives the same suggestion. It reports the spec's
 * temperature for a uniform answer, though rules have none to apply. Progress: one event per stage.
 *
 * @example const provider = createOfflineProvider();
 */
export function createOfflineProvider(): AiProvider {
  return {
    name: 'offline',
    model: OFFLINE_MODEL,
    temperature: GENERATION_TEMPERATURE,
    async suggestGoal(request, options) {
      const stop = () => {
        if (options.signal.aborted) throw new ProviderError('Generation was cancelled');
      };
      stop();
      options.onProgress({ stage: 'reading', provider: 'offline', model: OFFLINE_MODEL, characters: request.description.length });
      const found = recognise(request.description);
      stop();
      options.onProgress({
        stage: 'fields',
        fields: found.fields.map((field) => ({ key: field.key, type: field.type, required: field.required })),
      });
      options.onProgress({ stage: 'metric', metric: found.metric });
      return {
        name: found.name,
        description: request.description.trim().slice(0, 5000),
        lead_fields: found.fields,
        ...(found.metric ?? {}),
      };
    },
    /** Milestones from the goal's own fields by rules (src/ai/roadmap-rules.ts); deterministic. */
    async suggestRoadmap(request, options) {
      if (options.signal.aborted) throw new ProviderError('Generation was cancelled');
      options.onProgress({ stage: 'planning', provider: 'offline', model: OFFLINE_MODEL });
      return planRoadmap(request.goal, request.instructions);
    },
  };
}
