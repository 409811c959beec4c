import type { LeadField, LeadFieldType } from '../db/schema.ts';

/**
 * The offline provider's reading of a description: which lead fields it asks for, with what types,
 * whether it implies a metric, and a short name. Rules, not a model: deterministic, instant, offline.
 *
 * The text is cut into sentences; in each, the things to collect are the comma/and/or-separated items
 * that follow a collecting verb ("collect", "ask for", "find out if", …), a heading ("Event
 * registration: …", "Fields: …"), or stand alone as questions ("Is the caller a homeowner?"). Each item
 * is classified by ordered rules — explicit hints in parentheses, listed options, yes/no questions, then
 * concepts (email, URL, phone, time windows, dates, address parts, identifiers, numbers, names…) — and
 * falls back to a free-text field when it reads like a noun phrase nobody has a rule for.
 */

/** A lead field the rules found: the stored shape of one (db/schema.ts). */
export type SuggestedField = LeadField;

export interface SuggestedMetric {
  goal_type: 'numeric' | 'scale';
  target_value: number;
  unit: string | null;
  min_value?: number;
  max_value?: number;
}

export interface Recognition {
  name: string;
  fields: SuggestedField[];
  metric: SuggestedMetric | null;
}

const MAX_FIELDS = 50;

/**
 * @example recognise('Collect customer name, email, and preferred contact time for callback scheduling')
 * // → { name: 'Callback scheduling', fields: [full_name text, email email, preferred_contact_time text], metric: null }
 */
export function recognise(description: string): Recognition {
  const text = normalise(description);
  const metric = findMetric(text);
  const fields: SuggestedField[] = [];
  const headers: string[] = [];
  const sentences = splitSentences(text);
  let intro: string | undefined;
  for (const [index, sentence] of sentences.entries()) {
    const found = readSentence(sentence, metric);
    if (found.header) headers.push(found.header);
    // A first sentence that asks for nothing sets the scene: "Pet grooming bookings."
    if (index === 0 && found.fields.length === 0 && !found.header) intro = sentence.text;
    for (const field of found.fields) addField(fields, field);
  }
  const name = deriveName({ first: sentences[0]?.text ?? text, intro, headers, metric, fields });
  return { name, fields: fields.slice(0, MAX_FIELDS), metric: metric?.metric ?? null };
}

// ---------------------------------------------------------------------------------------------------
// Text clean-up and splitting

function normalise(text: string): string {
  let t = text
    .normalize('NFKC')
    .replace(/[\u2018\u2019\u02bc\u0060]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2022\u25cf\u25aa\u2023]/g, '-')
    .replace(/\r\n?/g, '\n')
    .replace(/\b(they|you|we|he|she|it|i)'(re|ve|d|ll|m)\b/gi, (_, who: string, v: string) => `${who} ${{ re: 'are', ve: 'have', d: 'would', ll: 'will', m: 'am' }[v.toLowerCase()]}`)
    .replace(/\b(what|who|where|when|how|that|there)'s\b/gi, '$1 is');
  // Bulleted lines belong to the line that introduces them: "Collect:\n- name\n- email" → "Collect: name, email".
  const lines = t.split('\n').map((l) => l.trim());
  const merged: string[] = [];
  let inList = false;
  for (const line of lines) {
    if (line === '') continue;
    const bullet = /^(?:[-*+]|\d{1,2}[.)])\s+(.*)$/.exec(line);
    if (!bullet) {
      merged.push(line);
      inList = false;
      continue;
    }
    const item = bullet[1]!.replace(/[.;,]+$/, '');
    const previous = merged[merged.length - 1];
    if (inList || (previous !== undefined && /:$/.test(previous))) {
      merged[merged.length - 1] = `${previous!.replace(/,$/, '')}${previous!.endsWith(':') ? ' ' : ', '}${item}`;
    } else {
      // Bullets with no line introducing them are a list all the same.
      merged.push(`Fields: ${item}`);
    }
    inList = true;
  }
  t = merged.map((l) => (/[.!?;:]$/.test(l) ? l : `${l}.`)).join(' ');
  return t
    .replace(/\b(e\.g|i\.e|etc|vs|approx|incl|esp|min|max|no|nr)\./gi, (_, w: string) => w.replace(/\./g, ''))
    .replace(/\s+[\u2013\u2014]\s+|\s+--?\s+/g, ': ')
    .replace(/[\u2013\u2014]/g, '-')
    .replace(/\s+/g, ' ')
    .trim();
}

interface Sentence {
  text: string;
  question: boolean;
}

/** Splits on . ! ? ; and newlines outside parentheses; a "." inside a word or number (1.5, site.com) stays. */
function splitSentences(text: string): Sentence[] {
  const out: Sentence[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '(' || ch === '[') depth++;
    else if ((ch === ')' || ch === ']') && depth > 0) depth--;
    else if (depth === 0 && '.!?;'.includes(ch) && (i + 1 === text.length || /\s/.test(text[i + 1]!))) {
      const piece = text.slice(start, i).trim();
      if (piece) out.push({ text: piece, question: ch === '?' });
      start = i + 1;
    }
  }
  const rest = text.slice(start).trim();
  if (rest) out.push({ text: rest, question: false });
  return out;
}

/** Splits `text` on `separator` wherever it is not inside parentheses. */
function splitTopLevel(text: string, separator: RegExp): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  let i = 0;
  const sticky = new RegExp(separator.source, separator.flags.includes('i') ? 'iy' : 'y');
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '(' || ch === '[') depth++;
    if ((ch === ')' || ch === ']') && depth > 0) depth--;
    if (depth === 0) {
      sticky.lastIndex = i;
      const m = sticky.exec(text);
      if (m && m[0].length > 0) {
        parts.push(current);
        current = '';
        i += m[0].length;
        continue;
      }
    }
    current += ch;
    i++;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

// ---------------------------------------------------------------------------------------------------
// Sentences → lists of items

const TRIGGER =
  /\b(?:collect(?:s|ed|ing)?|captur(?:e|es|ed|ing)|gather(?:s|ed|ing)?|get(?:s|ting)?|grab(?:s|bing)?|record(?:ing)?|request(?:ing)?|obtain(?:s|ing)?|log(?:ging)?|note down|take(?:s)? note of|make a note of|take(?:s)? down|write(?:s)? down|jot(?:s)? down|find(?:s|ing)? out|figure(?:s)? out|learn(?:s|ing)?|determine(?:s)?|identify|establish(?:es)?|confirm(?:s|ing)?|verify(?:ing)?|check(?:s|ing)?|need(?:s)?|require(?:s)?|want(?:s)?|include(?:s)?|enter|to know(?: about)?|describe|explain|specify|indicate|tell (?:us|me)(?: about)?|let (?:us|me) know|fill(?:s)? in|provide(?:s)?|qualify(?:ing)?(?: by| on| with)?|ask(?:s|ed|ing)?)\b/gi;

/** Words after a trigger that show it is not introducing things to collect ("get back to them"). */
const NOT_A_LIST = /^(?:to|back|in touch|started|going|ready|more|them|it|us|me|a goal|an agent|the goal|the agent|help|sure|rid|done)\b/i;

const NOUN_BEFORE = new Set(['a', 'an', 'the', 'any', 'their', 'his', 'her', 'your', 'our', 'my', 'its', 'special', 'this', 'each', 'every', 'some', 'no', 'credit', 'background', 'health', 'medical', 'service', 'reality', 'fact', 'call', 'price', 'quote', 'data']);
const THIRD_PERSON = /^(?:they|he|she|it|who|visitor|caller|customer|client|user|lead|prospect|patient|guest|person|someone|buyer|applicant|one|people|users|customers|visitors|callers|clients)$/;

const LIST_HEADING = /\b(?:fields?|the following|following|details|info(?:rmation)?|data points?|questions?|to collect|to capture|to ask|we need|needed|required|optional|must haves?|nice to haves?)\s*$/i;

interface ReadSentence {
  header?: string;
  fields: SuggestedField[];
}

function readSentence(sentence: Sentence, metric: FoundMetric | null): ReadSentence {
  let text = sentence.text;
  if (metric) text = text.replace(metric.phrase, ' ').trim();
  let optional = false;
  const lead = /^(?:optional(?:ly)?|if (?:possible|available|they have (?:one|it|them))|nice to have|bonus|also,? optionally)\b[:,]?\s*/i.exec(text);
  if (lead) {
    optional = /optional|if |nice|bonus/i.test(lead[0]);
    text = text.slice(lead[0].length);
  }
  if (/^(?:required|mandatory|must haves?)\s*:/i.test(text)) text = text.replace(/^[^:]*:\s*/, '');

  // "Name and email are required; phone is optional."
  const postfix = /^(.*?)\s+(?:is|are)\s+(?:also\s+)?(optional|not required|not needed|nice to have|required|mandatory|needed|a must)\b/i.exec(text);
  if (postfix && findTriggers(postfix[1]!).length === 0) {
    const isOptional = /optional|not|nice/i.test(postfix[2]!);
    return { fields: readList(postfix[1]!, { optional: optional || isOptional, fallback: true, question: false }) };
  }

  let header: string | undefined;
  const colon = findHeaderColon(text);
  if (colon >= 0) {
    const head = text.slice(0, colon).trim();
    const tail = text.slice(colon + 1).trim();
    const choice = asChoice(head, tail);
    if (choice) return { fields: [withOptional(choice, optional)] };
    const headTriggers = findTriggers(head);
    const tailTriggers = findTriggers(tail);
    if (!LIST_HEADING.test(head) && head.split(' ').length <= 10) {
      // "Event registration: …" names the goal; "Get the shipping address: …" does once its verb is gone.
      header = headTriggers.length === 0 ? head : nameFromInstruction(head, headTriggers);
    }
    if (tailTriggers.length === 0) {
      const fields = readList(tail, { optional: optional || /\boptional\b/i.test(head), fallback: true, question: sentence.question });
      return { header, fields };
    }
    return { header, fields: readTriggered(tail, tailTriggers, { optional, question: sentence.question }) };
  }

  const triggers = findTriggers(text);
  if (triggers.length > 0) return { fields: readTriggered(text, triggers, { optional, question: sentence.question }) };

  // No verb and no heading: a question ("Is the caller a homeowner?"), or a bare list ("Name, email, phone.").
  if (sentence.question || /^(?:is|are|do|does|did|has|have|will|would|can|could|what|which|when|where|who|how)\b/i.test(text)) {
    return { fields: readList(text, { optional, fallback: true, question: true }) };
  }
  if (/^(?:we|i|our|my|this|it|they|you|the goal|the agent|he|she|there)\b/i.test(text)) return { fields: [] };
  const items = readList(text, { optional, fallback: false, question: false });
  const pieces = splitItems(text);
  const alone = pieces.length === 1 ? pieces[0]!.replace(OPTIONAL_MARKS, ' ').trim() : '';
  const single = alone !== '' && isStrongConcept(alone) && alone.split(' ').length <= 6;
  if (items.length > 0 && (pieces.length > 1 ? items.length * 2 >= pieces.length : single)) {
    return { fields: readList(text, { optional, fallback: true, question: false }) };
  }
  return { fields: [] };
}

/** The index of a colon that introduces a list ("Heading: a, b"), not one in a URL or a time. */
function findHeaderColon(text: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '(') depth++;
    else if (ch === ')' && depth > 0) depth--;
    else if (ch === ':' && depth === 0 && text[i + 1] !== '/' && !/\d/.test(text[i + 1] ?? '')) return i;
  }
  return -1;
}

interface Trigger {
  start: number;
  end: number;
}

function findTriggers(text: string): Trigger[] {
  const out: Trigger[] = [];
  TRIGGER.lastIndex = 0;
  for (let m = TRIGGER.exec(text); m; m = TRIGGER.exec(text)) {
    const after = text.slice(m.index + m[0].length).trimStart();
    const word = m[0].toLowerCase();
    if (NOT_A_LIST.test(after) && !/^ask/.test(word)) continue;
    // "need"/"want"/"require" only introduce things, not actions ("we need to book…" was caught above).
    if (/^(?:need|want|require|include|provide|enter|save|store|check|learn|log|note)/.test(word) && /^(?:to|a goal|an?\s+(?:agent|bot|assistant))\b/i.test(after)) continue;
    // A noun, not a verb: "any special request", "a background check".
    const before = text.slice(0, m.index);
    const previous = /([\w']+)\s*$/.exec(before)?.[1]?.toLowerCase() ?? '';
    if (NOUN_BEFORE.has(previous)) continue;
    // Part of a question about the lead, not an instruction: "if the visitor wants …", "whether they need …".
    const clause = before.slice(Math.max(before.lastIndexOf(','), before.lastIndexOf(':')) + 1);
    if (THIRD_PERSON.test(previous) && !/^ask/.test(word)) continue;
    if (/^(?:want|need|require|include|check|save)/.test(word) && /\b(?:if|whether)\b/i.test(clause)) continue;
    let end = m.index + m[0].length;
    if (/^ask/.test(word)) {
      // "ask each visitor for …", "ask the caller whether …", "ask them about …"
      const rest = text.slice(end);
      const m2 = /^\s+(?:(?!for\b|about\b|whether\b|if\b)[\w']+\s+){0,3}?(for|about|to|whether|if|what|which|how|when|where|who|do|does|are|is|have|has|would|will|their|his|her|your)\b/i.exec(rest);
      if (m2) {
        const word2 = m2[1]!.toLowerCase();
        // "ask them to rate …" keeps the verb: the item reads "rate our service from 1 to 10".
        end += word2 === 'for' || word2 === 'about' || word2 === 'to' ? m2[0].length : m2[0].length - m2[1]!.length;
      }
    }
    out.push({ start: m.index, end });
  }
  TRIGGER.lastIndex = 0;
  return out;
}

function readTriggered(text: string, triggers: Trigger[], options: { optional: boolean; question: boolean }): SuggestedField[] {
  const fields: SuggestedField[] = [];
  triggers.forEach((trigger, index) => {
    const next = triggers[index + 1];
    const list = text.slice(trigger.end, next ? next.start : text.length);
    const optional = options.optional || /\boptionally\b/i.test(text.slice(Math.max(0, trigger.start - 12), trigger.start));
    fields.push(...readList(list, { optional, fallback: true, question: options.question }));
  });
  return fields;
}

/** "Roof type: shingle, tile, metal or flat" is one select field, not four. */
function asChoice(head: string, tail: string): SuggestedField | null {
  const headPhrase = cleanPhrase(head);
  if (!headPhrase || headPhrase.split(' ').length > 4 || LIST_HEADING.test(head) || findTriggers(head).length > 0) return null;
  const options = splitOptions(tail);
  if (options.length < 2 || options.some((o) => o.split(' ').length > 4)) return null;
  const conceptual = options.filter((o) => isStrongConcept(o)).length;
  if (conceptual * 2 >= options.length) return null;
  const choiceNoun = CHOICE_NOUN.test(headPhrase);
  if (!choiceNoun && !/\bor\b|\//i.test(tail)) return null;
  return makeField(headPhrase, 'select', { options });
}

const CHOICE_NOUN = /\b(?:type|kind|size|plan|tier|level|choice|option|preference|category|class|method|frequency|status|model|package|style|colou?r|flavou?r|format|mode|channel|interest|product|service|topic|subject|reason|source|range|stage|role|department|goal|priority|time of day)s?$/i;

function splitOptions(text: string): string[] {
  const cleaned = text.replace(/^(?:one of|either|choose from|choice of|chosen from|select(?:ed)? from|pick(?:ed)? from|options?(?: are)?:?)\s+/i, '');
  const parts = splitTopLevel(cleaned, /\s*,\s*(?:(?:and|or)\s+)?|\s+or\s+|\s*\/\s*|\s+and\s+/i);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const part of parts) {
    const option = part
      .replace(/^(?:a|an|the)\s+/i, '')
      .replace(/[.;:!?"]+$/g, '')
      .replace(/^"|"$/g, '')
      .trim()
      .slice(0, 200);
    if (!option || seen.has(option.toLowerCase()) || /^(?:etc|and so on|and more|more)$/i.test(option)) continue;
    seen.add(option.toLowerCase());
    out.push(option);
  }
  return out.slice(0, 100);
}

// ---------------------------------------------------------------------------------------------------
// Lists → items → fields

interface ListOptions {
  optional: boolean;
  /** Whether an item no rule recognises becomes a text field (only where the text is clearly a list). */
  fallback: boolean;
  question: boolean;
}

const CLAUSE_START = /^(?:and\s+|or\s+|plus\s+|also\s+)*(?:whether|if\s+(?!so\b|any\b|possible\b|available\b|applicable\b|needed\b|relevant\b|known\b|provided\b)|(?:is|are|do|does|did|has|have|will|would|can|could|was|were)\s+(?:they|you|he|she|it|the|their|there|this|we)\b)/i;

function splitItems(list: string): string[] {
  const prepared = list
    .replace(/\bfirst\s*(?:and|&|\/|or)\s*last\s+names?\b/gi, 'first name, last name')
    .replace(/\bnames?\s*\(\s*first\s*(?:and|&|\/|,)\s*last\s*\)/gi, 'first name, last name')
    .replace(/\bdates?\s*(?:and|&|\/|\+)\s*times?\b/gi, 'datetime')
    .replace(/\bdate-times?\b/gi, 'datetime')
    .replace(/\b(?:yes or no|yes\/no|y\/n)\b/gi, 'yes/no')
    .replace(/\bterms (?:and|&) conditions\b/gi, 'terms-and-conditions')
    .replace(/\band\/or\b/gi, 'or')
    // "plan, one of basic, pro or enterprise" → "plan (basic, pro, enterprise)"
    .replace(/,?\s*(?:[-:]\s*)?\b(?:one of|either one of|choose from|choice of|chosen from|select(?:ed)? from|pick(?:ed)? from)\s+([^.;()]+?(?:\s+or\s+|\s+and\s+)[\w+\-']+(?:\s[\w+\-']+)?)(?=$|[,.;])/gi, ' ($1)');
  const chunks = splitTopLevel(prepared, /\s*[,;]\s*/);
  const items: string[] = [];
  for (const chunk of chunks) {
    if (CLAUSE_START.test(chunk) || /^(?:what|which|when|where|who|how)\b/i.test(chunk)) {
      items.push(chunk);
      continue;
    }
    for (const piece of splitTopLevel(chunk, /\s+(?:and|or|&|plus|as well as|along with|together with)\s+(?!not\b)|\s*\+\s*/i)) {
      // "email/phone", "name/email/phone": alternatives between words (not "yes/no"; "S/M/L" sits in parentheses).
      if (/^[a-z][a-z -]*(?:\/[a-z][a-z -]*)+$/i.test(piece) && !/yes\/no|y\/n/i.test(piece)) items.push(...piece.split('/'));
      else items.push(piece);
    }
  }
  return items.map((i) => i.trim()).filter((i) => i !== '');
}

function readList(list: string, options: ListOptions): SuggestedField[] {
  const fields: SuggestedField[] = [];
  // "subscribers with their email, first name …", "leads including name and phone": the list starts after.
  list = list.trim();
  const intro = /^([\w' -]{1,60}?)\s+(?:with|including|incl|such as|namely|by asking (?:for|about)|asking (?:for|about))\s+/i.exec(list);
  const lastWord = intro?.[1]!.trim().split(/\s+/).pop()?.toLowerCase() ?? '';
  if (intro && (META.test(lastWord) || new RegExp(`^${PERSON}s?$`).test(lastWord))) list = list.slice(intro[0].length);
  for (const item of splitItems(list)) {
    for (const field of classifyItem(item, options)) fields.push(field);
  }
  return fields;
}

/** "… if they have one", "… (if any)", "an optional …": the item is not required. Conditions count at the end only. */
const OPTIONAL_MARK =
  /\s*,?\s*\bif (?:they (?:have|own) (?:one|it|them|any)|any|available|applicable|possible|provided|known|relevant|they want(?: to share)?|they wish|they'?d like|they are willing)\s*$|\s*\b(?:optional(?:ly)?|not required|not mandatory)\b\s*/i;
const OPTIONAL_MARKS = new RegExp(OPTIONAL_MARK.source, 'gi');

/** One list item → zero, one or several fields (a parenthesis can expand "address (street, city)"). */
function classifyItem(raw: string, options: ListOptions): SuggestedField[] {
  let item = raw.replace(/^(?:and|or|plus|also|then|finally|lastly|as well as|along with)\s+/i, '').trim();
  item = item.replace(/^(?:tell|let)\s+(?:us|me)\s+(?:know\s+)?(?:about\s+)?/i, '');
  item = item.replace(/[.!;:,]+$/g, '').trim();
  const question = options.question || /\?\s*$/.test(item);
  item = item.replace(/\?+\s*$/, '').trim();
  if (!item) return [];

  let optional = options.optional;
  let hintType: LeadFieldType | undefined;
  let selectOptions: string[] | undefined;
  let examples: string | undefined;
  let expand: string[] | undefined;

  // Parenthesised hints: "(optional)", "(yes/no)", "(S, M, L)", "(street, city, zip)", "(e.g. …)", "(in dollars)".
  item = item.replace(/\(([^()]*)\)/g, (_, inner: string) => {
    const hint = inner.trim();
    if (/^(?:optional|opt\.?|if any|if available|not required|nice to have)$/i.test(hint)) optional = true;
    else if (/^(?:required|mandatory|must)$/i.test(hint)) optional = false;
    else if (/\byes\s*\/\s*no\b|\byes or no\b|\by\s*\/\s*n\b|\btrue\s*\/\s*false\b/i.test(hint)) hintType = 'boolean';
    else if (/^(?:e\.?g\.?|eg|such as|like|for example|for instance|ie|i\.e\.?|say)\b/i.test(hint)) examples = hint;
    else if (/^\s*\d+(?:\.\d+)?\s*(?:-|to|–)\s*\d+(?:\.\d+)?\s*$/.test(hint) || /^(?:in\s+)?(?:minutes?|hours?|days?|weeks?|months?|years?|dollars?|usd|eur|euros?|gbp|pounds?|\$|€|£|kg|lbs?|miles?|km|sq\.? ?ft|square feet|m2|percent|%|numeric|number|integer|amount|count)$/i.test(hint)) hintType = 'number';
    else if (/\b(?:mm|dd)\s*\/\s*(?:dd|mm)\b|\byyyy\b|^date$/i.test(hint)) hintType = 'date';
    else if (/^(?:url|link|website)$/i.test(hint)) hintType = 'url';
    else if (/^(?:email|e-mail)$/i.test(hint)) hintType = 'email';
    else if (/^(?:phone|phone number)$/i.test(hint)) hintType = 'phone';
    else if (/^(?:free text|text)$/i.test(hint)) hintType = 'text';
    else {
      const parts = splitOptions(hint);
      if (parts.length >= 2) {
        const head = cleanPhrase(item.slice(0, item.indexOf('(')));
        if (!CHOICE_NOUN.test(head) && parts.filter((p) => isStrongConcept(p)).length * 2 > parts.length) expand = parts;
        else selectOptions = parts;
      } else if (parts.length === 1 && isStrongConcept(parts[0]!)) {
        expand = parts;
      }
    }
    return ' ';
  });
  if (OPTIONAL_MARK.test(item)) {
    optional = true;
    item = item.replace(OPTIONAL_MARKS, ' ');
  }
  item = item.replace(/\s+/g, ' ').trim();

  if (expand) {
    // "address (street, city, postal code)": the parts are the fields; a lone clarifying part replaces the item.
    return expand.flatMap((part) => classifyItem(part, { ...options, optional, question: false }));
  }
  if (!item) return [];
  const phrase = cleanPhrase(item);
  const mark = (field: SuggestedField | null) => (field ? [withOptional(field, optional, examples)] : []);

  if (selectOptions) return mark(makeField(choiceKeyPhrase(item), 'select', { options: selectOptions }));
  if (hintType) return mark(makeField(hintType === 'boolean' ? booleanPhrase(item) : phrase || item, hintType));

  if (/^(?:if|when|and if)\s+(?:so|yes|not|no|applicable|any|needed|possible|relevant)$/i.test(item)) return [];
  const rating = /^(?:to\s+)?(?:rate|score|grade)\s+(.+?)(?:\s+(?:from|on|out of|between)\b.*)?$/i.exec(item);
  if (rating && !/^(?:is|of)\b/i.test(rating[1]!)) return mark(makeField(`${cleanPhrase(rating[1]!) || 'overall'} rating`, 'number'));
  const clause = /^(?:whether|if)\s+(.*)$/i.exec(item);
  if (clause) return mark(fromWhether(clause[1]!));
  if (/^(?:is|are|do|does|did|has|have|will|would|can|could|was|were|should)\s+\S+/i.test(item) && (question || /^(?:is|are|do|does|did|has|have|will|would|can|could|was|were)\s+(?:they|you|he|she|it|the|their|there|this|we|his|her)\b/i.test(item))) {
    return mark(fromWhether(item));
  }
  const strong = strongCue(item.toLowerCase());
  if (strong) return mark(strong);
  // "catering needed?", "first visit?": a short question with a yes/no word in it.
  if (question && item.split(' ').length <= 6 && !/^(?:what|which|who|where|when|how|why)\b/i.test(item) && /\b(?:needed|required|wanted|interested|available|allowed|included|approved|ok|okay|eligible|insured|willing|ready|booked|paid|signed|confirmed|first|agreed|opted)\b/i.test(item)) {
    return mark(makeField(booleanPhrase(item), 'boolean'));
  }

  const wh = /^(?:what(?:'s| is| are| was)?|which|who(?:'s| is)?|where(?:'s| is)?)\s+(.*)$/i.exec(item);
  const body = wh ? stripWhClause(wh[1]!) : item;
  if (/^how\s+(?:many|much)\b/i.test(item)) return mark(makeField(howManyPhrase(item), 'number'));
  if (/^how\s+(?:old)\b/i.test(item)) return mark(makeField('age', 'number'));
  const size = /^how\s+(?:big|large|small)\s+(?:is\s+|are\s+)?(?:their|the|your|his|her)?\s*([\w-]+)/i.exec(item);
  if (size) return mark(makeField(`${cleanPhrase(size[1]!)} size`, 'number'));
  const rated = /^how\s+([\w-]+)\b.*\b(?:scale|rating|out of|from \d+ to \d+|\d+\s*(?:-|to)\s*\d+)\b/i.exec(item) ?? /^how\s+(satisfied|happy|likely|likely to recommend|confident|interested|important|urgent)\b/i.exec(item);
  if (rated) return mark(makeField(`${rated[1]!.toLowerCase()} rating`, 'number'));
  if (/^how\s+long\b/i.test(item)) return mark(makeField(cleanPhrase(item.replace(/^how long\s+/i, '')) + ' duration', 'text'));
  if (/^how\s+(?:did\s+)?(?:they|you|he|she)\s+(?:heard?|find|found|learn(?:ed)?)\b/i.test(item)) return mark(makeField('referral source', 'text'));
  if (/^when\b/i.test(item)) {
    // "when would you like us to call back" → callback time; "when do they plan to move" → move date.
    const rest = item
      .replace(/^when\s+(?:(?:do|does|did|will|would|can|could|should|is|are)\s+)?(?:they|you|he|she|it|we|the \w+)?\s*/i, '')
      .replace(/^(?:(?:would\s+)?(?:like|want|need|plan|hope|expect|prefer|intend)s?\s+)?(?:us\s+|me\s+|someone\s+)?(?:to\s+)?/i, '');
    const p = cleanPhrase(rest).replace(/\b(?:us|me|them|you)\b/g, '').replace(/\s+/g, ' ').trim();
    const atTime = /\b(?:call|callback|call back|ring|contact|reach|meet|visit|come|deliver|pick|drop|appointment|demo|time)\b/i.test(rest);
    return mark(makeField(p ? `${p} ${atTime ? 'time' : 'date'}` : 'date', atTime ? 'datetime' : 'date'));
  }

  const contact = contactDetails(cleanPhrase(body));
  if (contact) return contact.map((f) => withOptional(f, optional));
  const concept = conceptField(cleanPhrase(body) || body.toLowerCase());
  if (concept) return mark(concept);
  if (!options.fallback && !wh) return [];
  const fallback = fallbackField(cleanPhrase(body));
  if (!fallback && (wh || question)) {
    // A question in the list is a field even when it reads like a clause: "what we could improve".
    const words = cleanPhrase(item.replace(/^(?:what|which|who|where|why|how)(?:'s| is| are| was| were)?\s+/i, '')).split(' ').filter((w) => !/^(?:we|you|they|i|could|would|should|can|will|does|did|us|them)$/.test(w));
    if (words.length > 0) return mark(makeField(words.slice(0, 5).join(' '), 'text', { label: item }));
  }
  return mark(fallback);
}

function withOptional(field: SuggestedField, optional: boolean, examples?: string): SuggestedField {
  const out = { ...field, required: !optional };
  if (examples) out.description = `For example: ${examples.replace(/^(?:e\.?g\.?|eg|such as|like|for example|for instance|ie|i\.e\.?|say)[\s,:]*/i, '')}`.slice(0, 1000);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Yes/no questions and choices introduced by "whether"

const SUBJECT = /^(?:(?:they|you|he|she|it|we|there|this|that|the\s+[\w-]+|their\s+[\w-]+|his|her|the)\s+)/i;

function fromWhether(clause: string): SuggestedField {
  const text = clause.replace(/\?+$/, '').trim();
  if (!/\bor not\b|\bwhether or\b/i.test(text)) {
    // "whether they'd like a refund or a replacement" → select [refund, replacement]
    const choice = /^(.*?\b(?:want|wants|prefer|prefers|like|need|needs|choose|chooses|pick|picks|be|is|are|'d like|would like|plan to|own|rent)\b(?:\s+to)?\s+)?(.*\bor\b.*)$/i.exec(text.replace(SUBJECT, ''));
    if (choice) {
      const options = splitOptions(choice[2]!);
      if (options.length >= 2 && options.length <= 6 && options.every((o) => o.split(' ').length <= 3)) {
        return makeField(options.map((o) => cleanPhrase(o) || o).join(' or '), 'select', { options });
      }
    }
  }
  return makeField(booleanPhrase(text), 'boolean');
}

/** A yes/no question as a key-friendly phrase: "are they pre-approved for a mortgage" → "is pre approved for mortgage". */
function booleanPhrase(text: string): string {
  let t = text
    .toLowerCase()
    .replace(/\bor not\b/g, '')
    .replace(/\?/g, '')
    .replace(/^(?:whether|if)\s+/, '')
    .trim();
  let verb = '';
  const aux = /^(is|are|was|were|do|does|did|has|have|had|will|would|can|could|should|may|might)\s+/.exec(t);
  if (aux) {
    t = t.slice(aux[0].length);
    if (/^(?:is|are|was|were)$/.test(aux[1]!)) verb = 'is';
    if (/^(?:has|have|had)$/.test(aux[1]!)) verb = 'has';
    if (/^(?:may|might|can|could)$/.test(aux[1]!)) verb = aux[1] === 'might' ? 'may' : aux[1]!;
  }
  t = t.replace(SUBJECT, '');
  // "they would be open to …", "they have been a member before"
  t = t.replace(/^(?:would|will|could|can|should|might|may)\s+(?=be\b|like\b|want\b|need\b|prefer\b)/, '').replace(/^be\s+/, 'are ').replace(/^(?:have|has) been\s+/, 'were ');
  t = t.replace(/\s+(?:next|this|last)\s+(?:week|month|year|quarter)$|\s+(?:already|before|currently|yet|now|today|soon)$/, '');
  const v = /^(?:'d like|'re|'ve|already|currently|also|ever|still|really)\s+/;
  while (v.test(t)) t = t.replace(v, '');
  const first = /^(are|is|am|was|were|have|has|had|own|owns|need|needs|want|wants|would like|like|plan|plans|use|uses|agree|agrees|do|does|did)\b\s*/.exec(t);
  if (first) {
    t = t.slice(first[0].length);
    const w = first[1]!;
    verb = /^(?:are|is|am)$/.test(w)
      ? 'is'
      : /^(?:was|were)$/.test(w)
        ? 'was'
      : /^(?:have|has|had)$/.test(w)
        ? 'has'
        : /^owns?$/.test(w)
          ? 'owns'
        : /need/.test(w)
          ? 'needs'
          : /want|like/.test(w)
            ? 'wants'
            : /plan/.test(w)
              ? 'plans'
              : /use/.test(w)
                ? 'uses'
                : /agree/.test(w)
                  ? 'agrees'
                  : verb;
  }
  const keepTo = /^(?:wants|plans|needs)$/.test(verb) && /^to\s+/.test(t);
  const rest = cleanPhrase(t.replace(/^to\s+/, '')) || t;
  return `${verb ? `${verb} ` : ''}${keepTo ? 'to ' : ''}${rest.replace(/\b(?:them|him|her|us|me)\b/g, '').replace(/\s+/g, ' ')}`.trim();
}

/** Cues that make an item a yes/no field wherever it stands: consent, opt-in, "interested in …". */
function strongCue(lower: string): SuggestedField | null {
  if (/\b(?:consent|opt[- ]?in|opt[- ]?out|permission|gdpr|terms-and-conditions|accepts? (?:the )?terms|agree(?:s|d|ment)? to|agrees? with)\b/.test(lower)) {
    return makeField(cleanPhrase(lower) || 'consent', 'boolean');
  }
  if (/^(?:interested in|willing to|open to|wants? to|would like to|plans? to|able to|eligible for|ready to)\b/.test(lower)) {
    return makeField(booleanPhrase(lower.replace(/^(interested|willing|open|able|eligible|ready)\b/, 'is $1')), 'boolean');
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Concepts

const PHONE = /\b(?:phone|phones|telephone|tel|mobile|cell|cellphone|whatsapp|sms|fax|landline|(?:best|good|contact|callback|call-back|direct|reachable|daytime|evening) number|number to (?:call|text|reach))\b/;
const EMAIL = /\be-?mails?\b/;
const URL_WORDS = /\b(?:url|urls|website|websites|web site|web address|homepage|home page|link|links|linkedin|github|portfolio|domain|web page|webpage|site)\b/;
const TIME_WINDOW =
  /\b(?:best|good|preferred|convenient|ideal|suitable|usual)\s+(?:\w+\s+)?(?:times?|days?|hours?|window|slot)\s+(?:to|for|of)\b|\b(?:best|good|convenient|ideal|suitable)\s+(?:times?|days?|hours?)\b|\b(?:preferred|best)\s+(?:contact|call|calling|callback|call-back|lesson|class|meeting)\s+(?:times?|hours?|window|days?)\b|\btimes\b|\btime (?:window|frame|range|of day|preference)s?\b|\btimeframe\b|\btimeline\b|\bavailability\b|\bavailable (?:times|days|hours|slots)\b|\bhours\b|\bschedule\b|\bwindow\b|\btime zone\b|\btimezone\b|\burgency\b/;
const DATETIME =
  /\bdatetime\b|\btimestamp\b|\b(?:appointment|meeting|call|callback|call-back|pick-?up|drop-?off|delivery|arrival|departure|reservation|booking|visit|demo|consultation|viewing|tour|interview|session|start|end|event|check-?in|check-?out|test drive|flight|lesson|class|service|installation|inspection)\s+time\b|\btime\b|\bappointment\b|\bappointment slot\b/;
const DATE =
  /\b(?:date|dates|dob|d\.o\.b|birthday|birthdate|born|anniversary|deadline|due|expiry|expiration|move-?in|check-?in|check-?out|arrival|departure|day)\b/;
const DATE_STRONG = /\b(?:date|dates|dob|birthday|birthdate|anniversary|deadline|expiry|expiration|due date)\b/;
const POSTAL = /\b(?:zip|zip code|zipcode|postal code|postcode|post code|pin code)\b/;
const ADDRESS = /\b(?:address|street|city|town|state|province|region|county|country|neighbou?rhood|suburb|district|location|area|apartment|apt|unit number|building|floor|destination|origin)\b/;
const IDENTIFIER =
  /\b(?:id|ids|identifier|vin|ssn|iban|sku|serial|code|reference|ref|tax id|vat)\b|\b(?!phone|mobile|cell|contact|telephone|fax|whatsapp|callback|lucky)[a-z]+\s+(?:number|no|#)\b/;
const NUMBER_HEAD_EXCLUDED =
  /\b(?:method|methods|type|types|kind|status|preference|preferences|provider|company|currency|details|source|category|categories|option|options|name|names|plan|terms|goals?|reason|notes?|description|requests?|restrictions?|needs|interests?|history|experience level)$/;
const NUMBER =
  /\b(?:number|no|#|count|amount|quantity|qty|total) of\b|\b(?:budget|budgets|price|prices|pricing|cost|costs|fee|fees|salary|salaries|income|revenue|turnover|spend|spending|deposit|down ?payment|amount|value|worth|bill|rent|premium|valuation|arr|mrr|profit|savings|debt|balance|pledge|tip|wage|rate|rates|score|rating|ratings|percentage|percent|ratio|nps|csat|gpa|grade point average|volume|capacity|headcount|head count|age|ages|weight|height|length|width|depth|distance|mileage|odometer|square (?:feet|foot|footage|meters|metres)|sq\.? ?(?:ft|m)|sqft|footage|acreage|acres|quantity|qty|units|count|year|years|months|weeks|days|nights|minutes|hours|seats|licen[cs]es|employees|staff|guests|attendees|participants|people|persons|adults|children|kids|travell?ers|passengers|bedrooms|bathrooms|beds|baths|rooms|tickets|vehicles|locations|users)\b|\$|€|£|\b(?:usd|eur|gbp|dollars?|euros?)\b|\b(?:team|company|household|party|group|family|fleet|class|staff|crowd|audience|order|lot|home|house|property|office|business|organi[sz]ation) size\b/;
const NAME = /\b(?:name|names|surname|forename)\b/;
const COMPANY = /\b(?:company|business|organi[sz]ation|employer|firm|agency|brand|practice|institution|school|university|college|workplace|store|shop|vendor|supplier|insurer|carrier|lender|bank)\b/;
const TITLE = /\b(?:job title|title|role|position|occupation|profession|job function|seniority|designation|department|job)\b/;
const REFERRAL = /\b(?:hear|heard|find|found|learn(?:ed)?)\s+(?:about|of)\b|\breferral\b|\blead source\b|\breferred by\b|\bsource\b/;
const WEAK_BOOLEAN =
  /^(?:is\s+)?(?:a\s+)?(?:homeowner|home owner|decision[- ]maker|pre-?approved|pre-?qualified|existing customer|current customer|returning customer|new customer|first[- ]time (?:buyer|visitor|customer|caller)?|smoker|veteran|insured|newsletter|newsletter sign-?up|subscribed|member|vip)(?:\s+status)?$/;

/** Whether the phrase names a lead field by one of the dependable rules (used to tell fields from options). */
function isStrongConcept(text: string): boolean {
  const lower = cleanPhrase(text) || text.toLowerCase();
  if (/\d/.test(lower)) return false;
  return (
    EMAIL.test(lower) ||
    PHONE.test(lower) ||
    /\b(?:url|urls|website|web site|homepage|linkedin|portfolio|(?:\w+ )?link)$/.test(lower) ||
    POSTAL.test(lower) ||
    /\b(?:address|street|city|town|state|province|region|county|country)\b/.test(lower) ||
    NAME.test(lower) ||
    DATE_STRONG.test(lower) ||
    /\b(?:budget|age|company|job title|title|role|notes?|comments?)\b/.test(lower)
  );
}

/** The rule-based part: a cleaned phrase → the field it names, or null when no rule knows it. */
function conceptField(p: string): SuggestedField | null {
  if (!p) return null;
  if (/^contact (?:details|info|information)$/.test(p)) return null; // expanded by the caller
  if (/\b(?:contact|communication) (?:method|channel|preference)s?$|^(?:preferred )?(?:method|way|channel) of (?:contact|communication)$/.test(p)) {
    return makeField(p.replace(/^(?:preferred )?(?:method|way|channel) of (contact|communication)$/, 'preferred $1 method'), 'select', { options: ['Email', 'Phone call', 'Text message'] });
  }
  // "reason for the appointment", "description of the issue": free text about something, whatever it is.
  if (/^(?:reasons?|purpose|cause|motivation|description|details|notes?|summary|nature|explanation) (?:for|of|about)\b/.test(p)) return makeField(p, 'text');
  if (EMAIL.test(p) && !/\bmailing\b/.test(p)) return makeField(canonical(p, EMAIL, 'email'), 'email');
  if (URL_WORDS.test(p) && !/\b(?:handle|username|user name)\b/.test(p)) return makeField(urlPhrase(p), 'url');
  if (PHONE.test(p) && !/\b(?:type|model|brand|make|plan|carrier|provider|screen|case)$/.test(p)) {
    return makeField(canonical(p, /\b(?:phone|phones|telephone|tel|mobile|cell|cellphone|number|contact number|callback number)\b/, 'phone'), 'phone');
  }
  if (POSTAL.test(p)) return makeField(canonical(p, POSTAL, 'postal code'), 'text');
  if (TIME_WINDOW.test(p)) return makeField(p, 'text');
  const timeOfDay = /\btimes?\b|\bdatetime\b|\btimestamp\b/.test(p) && !/\b(?:full|part)-?time\b|\btime (?:zone|off)\b/.test(p);
  if (timeOfDay && DATETIME.test(p)) return makeField(p.replace(/\bdatetime\b/, 'date and time'), 'datetime');
  if (DATE.test(p) && (DATE_STRONG.test(p) || /\b(?:move-?in|check-?in|check-?out|arrival|departure|day|due|born)$/.test(p))) return makeField(p, 'date');
  if (DATETIME.test(p) && !/\b(?:full|part)-?time\b|\btime (?:zone|off)\b/.test(p)) return makeField(p, 'datetime');
  if (ADDRESS.test(p) && !NUMBER.test(p.replace(/\b(?:number|no|#)$/, ''))) return makeField(p, 'text');
  if (IDENTIFIER.test(p) && !/\bnumber of\b/.test(p)) return makeField(p, 'text');
  if (NUMBER.test(p) && !NUMBER_HEAD_EXCLUDED.test(p)) return makeField(numberPhrase(p), 'number');
  // "bottles per shipment", "visits per month": a count per something.
  if (/^(?:[\w-]+\s+)?[a-z-]+s per (?:[\w-]+)$/.test(p)) return makeField(p, 'number');
  if (NAME.test(p)) return makeField(namePhrase(p), 'text');
  if (/^(?:title|job|job title|role|position)$/.test(p)) return makeField('job title', 'text');
  if (COMPANY.test(p) && /^(?:company|business|organi[sz]ation|employer|firm|agency)(?: name)?$/.test(p)) return makeField('company', 'text');
  if (TITLE.test(p) || COMPANY.test(p)) return makeField(p, 'text');
  if (REFERRAL.test(p)) return makeField('referral source', 'text');
  if (/\b(?:notes?|comments?|remarks?|message|feedback|anything else|additional (?:info|information|details|comments)|questions?|special requests?|description|summary|details)\b/.test(p)) return makeField(p, 'text');
  if (/^home ?ownership(?: status)?$/.test(p)) return makeField('is homeowner', 'boolean');
  if (WEAK_BOOLEAN.test(p)) return makeField(p.startsWith('is ') ? p : `is ${p.replace(/^a\s+/, '')}`, 'boolean');
  if (/\b(?:gender|nationality|language|industry|occupation|species|breed|allerg(?:y|ies)|dietary|insurance provider|current provider)\b/.test(p)) return makeField(p, 'text');
  return null;
}

/** "contact details" with no parts named: the two ways to reach someone. */
function contactDetails(p: string): SuggestedField[] | null {
  if (!/^(?:contact|reach) (?:details|info|information)$|^contact$/.test(p)) return null;
  return [makeField('email', 'email'), makeField('phone', 'phone')];
}

const META = /\b(?:goal|goals|agent|agents|bot|chatbot|assistant|form|lead|leads|prospects?|customers?|callers?|visitors?|users?|following|information|info|details|data|things?|stuff|questions?|fields?)\b/;
/** A phrase ending in one of these names people or paperwork, not a field: "solar leads", "website visitors". */
const META_HEAD = /^(?:agents?|bots?|chatbot|assistant|form|leads|prospects|customers|callers|visitors|users|following|information|info|data|things|stuff|fields)$/;
const CLAUSE_WORDS = /\b(?:we|i|you|it|us|me|my|our|they|them|he|she|so|because|which|that|can|could|should|will|would|must|is|are|was|were|be|been|being|do|does|did)\b/;

function fallbackField(p: string): SuggestedField | null {
  if (!p || /^\d/.test(p)) return null;
  const words = p.split(' ');
  if (words.length > 5) return null;
  if (CLAUSE_WORDS.test(p)) return null;
  if (words.every((w) => META.test(w) || STOP.has(w)) || META_HEAD.test(words[words.length - 1]!)) return null;
  if (/^(?:etc|so on|more|others?|anything|everything|something|else|yes|no|none|n\/a|if so|the rest)$/.test(p)) return null;
  return makeField(p, 'text');
}

// ---------------------------------------------------------------------------------------------------
// Phrases, keys and labels

const STOP = new Set(['the', 'a', 'an', 'their', 'his', 'her', 'its', 'your', 'our', 'my', 'any', 'some', 'each', 'every', 'all', 'also', 'just', 'and', 'or', 'of', 'for', 'to', 'in', 'on', 'at', 'with', 'by', 'from', 'about', 'please', 'then', 'too', 'as', 'well', 'this', 'that', 'these', 'those', 'other', 'own']);

const PERSON =
  '(?:customer|caller|client|lead|prospect|user|visitor|patient|guest|buyer|seller|person|contact|applicant|candidate|attendee|tenant|member|donor|driver|shopper|subscriber|participant|traveller|traveler|volunteer|homeowner|borrower|consumer|respondent|registrant|lead\'s|account|owner|parent|student|people|folks|everyone|someone|anyone)';

/** Lower-cases an item and strips what is not the field's name: articles, possessives, purposes, trailing verbs. */
function cleanPhrase(text: string): string {
  let p = ` ${text.toLowerCase().replace(/[\u2018\u2019]/g, "'")} `;
  p = p.replace(/[?!.,;:"]/g, ' ');
  // Purposes and circumstances: "phone number for the courier", "email used for the purchase".
  p = p.replace(/\s(?:so that|so we|so they|so the|so it|in order to|because|which we|that we|when (?:it|they|we)|before|after|once|in case|to (?:text|call|reach|contact|send|email|use|confirm|notify|follow)\b).*$/, ' ');
  // … but "reason for the visit" and "budget for the project" name the field with it.
  p = p.replace(/(\S+\s+\S+.*?)\s(for|during)\s(.*)$/, (all, before: string, _w: string, after: string) =>
    /\b(?:reason|reasons|purpose|cause|motivation|budget|need|needs|request|requests|plans?)$/.test(before) ||
    /^the (?:visit|stay|event|project|trip|job|appointment|move|course)\b/.test(after)
      ? all
      : `${before} `,
  );
  p = p.replace(/(\S+)\s+from\s+(?:every|each|all|the|our|their|any|new|inbound|outbound|website|web|people|visitors|customers|callers|leads|prospects)\b.*$/, '$1 ');
  // A person's possessive names whose field it is, not the field: "the patient's name" → "name".
  p = p.replace(new RegExp(`\\s(?:the\\s+|each\\s+|every\\s+|a\\s+)?${PERSON}(?:'s|s'|s's)\\s`, 'g'), ' ');
  p = p.replace(/'s\b|s'\s/g, (m) => (m.startsWith("'") ? '' : 's '));
  // "current tools they use", "email they signed up with": the clause about the lead goes.
  p = p.replace(/(\S+)\s+(?:that\s+|which\s+)?(?:they|he|she|you|we)(?:'re|'ve|'d|'ll|\s+\w+)(?:\s+\w+){0,4}\s*$/, '$1 ');
  p = p.replace(/\s(?:needed|required|wanted|desired|used|requested|preferred by them|please|etc)\s*$/g, ' ');
  const words = p
    .split(/\s+/)
    .filter((w) => w !== '')
    .filter((w, i, all) => !(STOP.has(w) && (i === 0 || i === all.length - 1 || ['the', 'a', 'an', 'their', 'his', 'her', 'its', 'your', 'our', 'my', 'any', 'some', 'each', 'every', 'also', 'just', 'please'].includes(w))));
  while (words.length > 0 && STOP.has(words[words.length - 1]!)) words.pop();
  while (words.length > 0 && STOP.has(words[0]!)) words.shift();
  // A person word alone before the field ("customer name", "caller email") adds nothing.
  if (words.length >= 2 && new RegExp(`^${PERSON}$`).test(words[0]!) && /^(?:name|names|email|e-mail|phone|number|mobile|address|full|first|last)$/.test(words[1]!)) {
    if (!/^(?:owner|parent|student|member|account)$/.test(words[0]!)) words.shift();
  }
  return words.join(' ').trim();
}

/** "which plan they are interested in" → "plan"; "what is their budget" is handled by the wh- strip. */
function choiceKeyPhrase(item: string): string {
  const which = /^(?:which|what)\s+([\w-]+(?:\s+[\w-]+)??)\s+(?:they|you|he|she|the|would|do|does|is|are)\b/i.exec(item);
  if (which) return cleanPhrase(which[1]!);
  const p = cleanPhrase(stripWhClause(item.replace(/^(?:which|what)\s+/i, '')));
  return p.replace(/\s+(?:they|you)\b.*$/, '').replace(/\s+(?:it|it is|they are|is)$/, '') || 'choice';
}

function stripWhClause(text: string): string {
  return text
    .replace(/\s+(?:is|are|was|were)\s*$/i, '')
    .replace(/^(?:is|are|was|were)\s+/i, '')
    .replace(/^(?:(?:do|does|did|would|will|can)\s+)?(?:they|you|he|she|the \w+)\s+(?:\w+\s+)?(?:for|in|on|about|with)?\s*/i, (m) => (/\b(?:for|in|on|about|with)\s*$/i.test(m) ? '' : m))
    .trim();
}

function howManyPhrase(item: string): string {
  const m = /^how\s+(many|much)\s+([\w-]+(?:\s+[\w-]+)?)?/i.exec(item);
  const noun = m?.[2] ? cleanPhrase(m[2].replace(/\b(?:do|does|did|will|would|they|you|are|is|can|should|have|has)\b.*$/i, '')) : '';
  if (m?.[1]?.toLowerCase() === 'much') return noun && !/^(?:they|it)$/.test(noun) ? `${noun} amount` : 'amount';
  return noun ? `number of ${noun}` : 'quantity';
}

function numberPhrase(p: string): string {
  return p.replace(/^(?:estimated|approximate|approx|rough|expected|average|total)\s+(?=\w)/, (m) => (/expected|average|total/.test(m) ? m : ''));
}

function namePhrase(p: string): string {
  if (/\bfirst\s*name|\bgiven name|\bforename/.test(p)) return 'first name';
  if (/\blast\s*name|\bsurname|\bfamily name/.test(p)) return 'last name';
  const of = /^name of (.+)$/.exec(p);
  if (of) return `${of[1]} name`;
  const rest = p.replace(/\b(?:full|complete|legal|contact|their|person|name|names)\b/g, '').trim();
  return rest === '' ? 'full name' : p;
}

function urlPhrase(p: string): string {
  if (/\blinkedin\b/.test(p)) return /\bcompany\b/.test(p) ? 'company linkedin url' : 'linkedin url';
  if (/^(?:website|web site|site|homepage|home page|url|website url|web address)$/.test(p)) return 'website';
  return p.replace(/\blink to (?:a |an |the |their )?/, '').replace(/\b(?:url|link)$/, 'url');
}

/** Keeps qualifiers ("work email", "emergency contact phone") but names the bare concept canonically. */
function canonical(p: string, concept: RegExp, name: string): string {
  const head = p.replace(/\s+(?:to|for)\s.*$/, '');
  const rest = head
    .replace(new RegExp(concept.source, 'g'), ' ')
    .replace(/\b(?:address|number|best|preferred|main|primary|good|contact|their|e|code|valid|current|reachable)\b/g, ' ')
    .trim();
  if (rest === '') return name;
  return `${rest.replace(/\s+/g, ' ')} ${name}`;
}

const LABELS: Record<string, string> = {
  full_name: 'Full name',
  first_name: 'First name',
  last_name: 'Last name',
  email: 'Email',
  phone: 'Phone number',
  postal_code: 'Postal code',
  website: 'Website',
  linkedin_url: 'LinkedIn profile URL',
  job_title: 'Job title',
  company: 'Company',
  referral_source: 'How they heard about us',
  date_of_birth: 'Date of birth',
};

const ACRONYMS: Record<string, string> = { id: 'ID', url: 'URL', vin: 'VIN', dob: 'DOB', zip: 'ZIP', vat: 'VAT', nps: 'NPS', crm: 'CRM', ssn: 'SSN', usd: 'USD', b2b: 'B2B', saas: 'SaaS', linkedin: 'LinkedIn', faq: 'FAQ', iban: 'IBAN', sku: 'SKU', arr: 'ARR', mrr: 'MRR', api: 'API', gdpr: 'GDPR', gpa: 'GPA', id_number: 'ID number' };

/** A key of `^[a-z][a-z0-9_]{0,63}$` from a phrase: "Preferred contact time" → "preferred_contact_time". */
export function toKey(phrase: string): string {
  let key = phrase
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/\bdate of birth\b|\bbirth ?date\b|\bdob\b/g, 'date_of_birth')
    .replace(/\b(?:e-mail|email address)\b/g, 'email')
    .replace(/\b(?:phone number|telephone number|telephone|mobile number|mobile phone|cell phone|cellphone|cell number)\b/g, 'phone')
    .replace(/\b(?:zip code|zipcode|zip|postcode|post code)\b/g, 'postal_code')
    .replace(/#/g, ' number ')
    .replace(/%/g, ' percent ')
    .replace(/&/g, ' and ')
    .replace(/\+/g, ' plus ')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  const parts = key.split('_').filter((w) => w !== '' && !['the', 'a', 'an', 'their'].includes(w));
  key = (parts.length > 0 ? parts : key.split('_')).join('_');
  if (!/^[a-z]/.test(key)) key = `field_${key}`.replace(/_+$/, '');
  if (key.length > 40) key = key.slice(0, 40).replace(/_[^_]*$/, '') || key.slice(0, 40);
  return key.replace(/_+$/, '') || 'field';
}

function toLabel(phrase: string, key: string): string {
  if (LABELS[key]) return LABELS[key];
  const words = phrase
    .replace(/\bdatetime\b/g, 'date and time')
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => ACRONYMS[w.toLowerCase()] ?? w);
  const label = words.join(' ').trim();
  if (!label) return key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
  return (label.charAt(0).toUpperCase() + label.slice(1)).slice(0, 200);
}

function makeField(phrase: string, type: LeadFieldType, extra: { options?: string[]; label?: string } = {}): SuggestedField {
  const clean = phrase.replace(/\s+/g, ' ').trim() || type;
  const key = toKey(clean);
  const label = extra.label ? toLabel(extra.label.replace(/\?+$/, ''), '') : toLabel(clean, key);
  const field: SuggestedField = { key, label, type, required: true };
  if (type === 'select') field.options = extra.options;
  return field;
}

/** Adds a field unless the same one is already there; a repeated key of another type gets a suffix. */
function addField(fields: SuggestedField[], field: SuggestedField): void {
  if (fields.length >= MAX_FIELDS) return;
  if (field.key === 'email' && field.label === 'Email' && field.type === 'email' && fields.some((f) => f.type === 'email' && f.key === 'email')) {
    return;
  }
  const same = fields.find((f) => f.key === field.key);
  if (same && same.type === field.type) {
    // Mentioned twice ("Email is optional" after "collect … email"): optional if either mention says so.
    same.required = same.required && field.required;
    if (field.options && same.options) same.options = [...new Set([...same.options, ...field.options])].slice(0, 100);
    return;
  }
  let key = field.key;
  for (let n = 2; fields.some((f) => f.key === key); n++) key = `${field.key.slice(0, 60)}_${n}`;
  fields.push({ ...field, key });
}

// ---------------------------------------------------------------------------------------------------
// The metric: "book 20 demos this month" → numeric, target 20, unit "demos"

interface FoundMetric {
  metric: SuggestedMetric;
  /** The words that stated it, so they are not read as a field too. */
  phrase: string;
  verbPhrase: string;
}

const GOAL_VERBS =
  'book|books|booking|schedule|scheduling|close|closing|sign(?: up)?|signing(?: up)?|get|getting|collect|collecting|capture|generate|generating|qualify|acquire|reach|hit|make|win|land|secure|convert|complete|sell|selling|recruit|recruiting|enrol+|onboard|register|gather|obtain|set|arrange|achieve|deliver|handle|resolve|answer|process|host|run|send|publish|hire|raise|raising|earn|attract|add|bring in|drive|close out|confirm|fill|grow to|increase to|reach out to';

const NUMBER_WORDS: Record<string, number> = {
  one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12,
  thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19, twenty: 20,
  thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90, hundred: 100, 'a hundred': 100,
  'a dozen': 12, dozen: 12, 'a thousand': 1000, thousand: 1000,
};
const NUMBER_TOKEN = `(?:[$€£]\\s?)?\\d[\\d,]*(?:\\.\\d+)?\\s?(?:k|m|mm|million|thousand|bn|billion)?\\b|${Object.keys(NUMBER_WORDS).sort((a, b) => b.length - a.length).join('|')}`;
const UNIT_STOP = new Set(['per', 'a', 'an', 'each', 'every', 'this', 'next', 'by', 'before', 'in', 'within', 'over', 'during', 'from', 'for', 'and', 'with', 'that', 'which', 'who', 'to', 'on', 'at', 'weekly', 'monthly', 'daily', 'yearly', 'annually', 'quarterly', 'or', 'until', 'till', 'through', 'across', 'among', 'using', 'via', 'while', 'so', 'the', 'of', 'is', 'are', 'we', 'our', 'their', 'ask', 'collect', 'get']);

function parseNumber(raw: string): { value: number; currency?: string } | null {
  const text = raw.trim().toLowerCase();
  if (NUMBER_WORDS[text] !== undefined) return { value: NUMBER_WORDS[text]! };
  const m = /^([$€£])?\s?(\d[\d,]*(?:\.\d+)?)\s?(k|m|mm|million|thousand|bn|billion)?$/.exec(text);
  if (!m) return null;
  let value = Number(m[2]!.replace(/,/g, ''));
  const scale = m[3];
  if (scale === 'k' || scale === 'thousand') value *= 1_000;
  if (scale === 'm' || scale === 'mm' || scale === 'million') value *= 1_000_000;
  if (scale === 'bn' || scale === 'billion') value *= 1_000_000_000;
  if (!Number.isFinite(value) || Math.abs(value) > 1e12) return null;
  const currency = m[1] === '$' ? 'USD' : m[1] === '€' ? 'EUR' : m[1] === '£' ? 'GBP' : undefined;
  return { value, currency };
}

function findMetric(text: string): FoundMetric | null {
  // "8 out of 10", "9/10" satisfaction → a scale.
  const scale = new RegExp(`\\b(?:${GOAL_VERBS}|of|to|at least|average)\\s+(?:an?\\s+)?(?:average\\s+)?(?:\\w+\\s+){0,2}?(\\d+(?:\\.\\d+)?)\\s*(?:out of|/)\\s*(\\d+)\\b`, 'i').exec(text);
  if (scale) {
    const target = Number(scale[1]);
    const max = Number(scale[2]);
    if (max > 0 && target <= max && max <= 1000) {
      return { metric: { goal_type: 'scale', target_value: target, min_value: 0, max_value: max, unit: null }, phrase: '', verbPhrase: scale[0] };
    }
  }
  // "increase conversions to 25%", "reach a 40% show-up rate"
  const percent = new RegExp(`\\b(?:increase|grow|raise|boost|improve|lift|get|reach|hit|achieve|keep|maintain|push|bring)\\b[^.;:]{0,60}?\\b(?:to|of|at|above|over)?\\s*(\\d+(?:\\.\\d+)?)\\s*(?:%|percent\\b)`, 'i').exec(text);
  const counted = new RegExp(`\\b(?:${GOAL_VERBS}|goal(?:\\s+is)?(?:\\s+of|\\s+to|\\s*:)?|target(?:\\s+is)?(?:\\s+of|\\s*:)?|aim(?: for| to \\w+)|quota(?:\\s+of|\\s*:)?|objective(?:\\s+is)?(?:\\s+of|\\s*:)?)\\s+(?:at least\\s+|over\\s+|more than\\s+|up to\\s+|about\\s+|around\\s+|roughly\\s+|a total of\\s+|another\\s+|an additional\\s+|an extra\\s+)?(${NUMBER_TOKEN})(?:\\s+|(?=[.,;:]|$))`, 'i').exec(text);
  if (counted && (!percent || counted.index <= percent.index)) {
    const number = parseNumber(counted[1]!);
    if (number && number.value > 0) {
      const after = text.slice(counted.index + counted[0].length);
      const words: string[] = [];
      for (const w of after.split(/\s+/)) {
        const word = w.replace(/[^\w'+-]/g, '');
        const ended = /[.,;:!?)]$/.test(w);
        if (!word || UNIT_STOP.has(word.toLowerCase()) || /^\d/.test(word)) break;
        words.push(word);
        if (ended || words.length === 4) break;
      }
      let unit = words.join(' ').toLowerCase() || null;
      if (number.currency) unit = number.currency;
      if (!unit && number.value > 0 && /^[$€£]/.test(counted[1]!)) unit = number.currency ?? null;
      if (unit && /^(?:%|percent)$/.test(unit)) unit = '%';
      if (unit && isStrongConcept(unit) && !number.currency) return percentOrNull(percent, text);
      if (unit === null && !number.currency) return percentOrNull(percent, text);
      const phraseEnd = counted.index + counted[0].length + (words.length ? after.indexOf(words[words.length - 1]!) + words[words.length - 1]!.length : 0);
      const phrase = text.slice(counted.index, phraseEnd);
      return {
        metric: { goal_type: 'numeric', target_value: number.value, unit: unit ? unit.slice(0, 50) : null },
        phrase: wholeClause(text, counted.index, phraseEnd),
        verbPhrase: phrase,
      };
    }
  }
  return percentOrNull(percent, text);
}

function percentOrNull(percent: RegExpExecArray | null, text: string): FoundMetric | null {
  if (!percent) return null;
  const value = Number(percent[1]);
  if (!(value > 0) || value > 1e6) return null;
  const end = percent.index + percent[0].length;
  return { metric: { goal_type: 'numeric', target_value: value, unit: '%' }, phrase: wholeClause(text, percent.index, end), verbPhrase: percent[0] };
}

/** The clause around a metric ("Book 20 demos this month"), up to the next sentence or list boundary. */
function wholeClause(text: string, start: number, end: number): string {
  const before = text.slice(0, start);
  const clauseStart = Math.max(before.lastIndexOf('. '), before.lastIndexOf('; '), before.lastIndexOf(': ')) + 1;
  const rest = text.slice(end);
  const stop = /[.;:]\s|[.;:]$|,?\s+(?:by|while|through)\s+(?:collecting|capturing|asking|getting|gathering|recording)\b|,?\s+(?:and\s+)?(?:collect|capture|ask|get|gather|record)\b/i.exec(rest);
  const clauseEnd = stop ? end + stop.index : text.length;
  const lead = text.slice(clauseStart, start);
  // Keep a leading "Goal:" or "We want to" inside the removed clause only when nothing else precedes.
  return (/^\s*(?:[\w' ]{0,40})?$/.test(lead) ? text.slice(clauseStart, clauseEnd) : text.slice(start, clauseEnd)).trim();
}

// ---------------------------------------------------------------------------------------------------
// The name

/** "Get the shipping address" → "Shipping address"; "Collect the following" → nothing. */
function nameFromInstruction(head: string, triggers: Trigger[]): string | undefined {
  const first = triggers[0]!;
  if (first.start > 0 && head.slice(0, first.start).trim() !== '') return head.slice(0, first.start).trim();
  const rest = head
    .slice(first.end)
    .replace(/^\s*(?:the|a|an|their|our|your|some|all)\s+/i, '')
    .replace(new RegExp(`^${PERSON}(?:'s|s')\s+`, 'i'), '')
    .trim();
  if (!rest || LIST_HEADING.test(rest) || /^(?:the )?following\b/i.test(rest) || rest.split(/\s+/).every((w) => META.test(w.toLowerCase()) || STOP.has(w.toLowerCase()) || new RegExp(`^${PERSON}s?$`).test(w.toLowerCase()))) {
    return undefined;
  }
  return rest;
}

/**
 * A short name: the text's own heading ("Event registration: …"), else the metric ("Book 20 demos"),
 * else a scene-setting opener ("For the webinar, …", "Pet grooming bookings."), else the purpose ("…
 * for callback scheduling"), else what is collected ("Collect name, email and company").
 */
function deriveName(input: { first: string; intro?: string; headers: string[]; metric: FoundMetric | null; fields: SuggestedField[] }): string {
  const usable = (h: string | undefined) => h !== undefined && h.split(/\s+/).length <= 8 && !/^(?:goal|target|objective|notes?|required|optional)$/i.test(h.trim());
  const firstTrigger = findTriggers(input.first)[0]?.start ?? input.first.length;
  const opener = /^(?:for|at|in)\s+(?:(?:the|a|an|our|my|this)\s+)?([^,:;]{3,50}?)(?:,|\s+(?:we|i|you|please|the agent)\b|$)/i.exec(input.first.slice(0, firstTrigger).trim())?.[1];
  // "… for callback scheduling", "… so we can send a quote"; not "reason for the visit" (an item).
  const purpose = /\b(?:for|so (?:that )?(?:we|they|you|the \w+) can|in order to)\s+(?!the\b|a\b|an\b|their\b|them\b)((?:\S+\s+)+\S+)$/i.exec(input.first.replace(/[.?!]+$/, ''))?.[1];
  const introName = input.intro && input.intro.split(/\s+/).length <= 8 && !/^(?:we|i|our|my|it|this|the goal|the agent)\b/i.test(input.intro) ? input.intro : undefined;
  const labels = input.fields.filter((f) => f.type !== 'boolean').slice(0, 3).map((f) => f.label.toLowerCase());
  const summary =
    labels.length === 0
      ? 'Lead capture'
      : `Collect ${labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(', ')} and ${labels[labels.length - 1]}`}`;
  const candidates = [
    input.headers.find((h) => usable(h)),
    input.metric?.verbPhrase,
    opener,
    introName,
    purpose && purpose.split(/\s+/).length <= 6 && !/[,(]/.test(purpose) ? purpose : undefined,
    summary,
  ];
  let name = candidates.find((c): c is string => typeof c === 'string' && c.trim() !== '') ?? 'Lead capture';
  name = name
    .replace(/^(?:goal|target|objective)\s*:\s*/i, '')
    .replace(/^(?:i|we)\s+(?:need|want|would like)\s+(?:a|an)\s+(?:goal|agent)\s+(?:for|to|that)\s+/i, '')
    .replace(/^(?:a|an|the)\s+/i, '')
    .replace(/[.,;:!?\s]+$/g, '')
    .trim();
  if (name.length > 60) name = name.slice(0, 60).replace(/\s+\S*$/, '');
  if (!name) name = 'Lead capture';
  return name.charAt(0).toUpperCase() + name.slice(1);
}
