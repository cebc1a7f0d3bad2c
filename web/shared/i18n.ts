// The texts people read, in English and French, picked from a language tag ('fr-CA' → French);
// anything else is English. Durations are said the way people say them ("about 3 hours").

export type Lang = 'en' | 'fr';

export const LANGS: readonly Lang[] = ['en', 'fr'];

/** The language of a tag such as the page's `lang`, `fr-FR` or `en`; English by default. */
export function pickLang(tag: string | null | undefined): Lang {
  const primary = (tag ?? '').trim().toLowerCase().split(/[-_]/)[0];
  return LANGS.find((l) => l === primary) ?? 'en';
}

/** The frame's title (its accessible name on the brand's page): all the loader needs. */
export const FRAME_TITLES: Readonly<Record<Lang, string>> = { en: 'Chat', fr: 'Messagerie' };

const en = {
  launcher: 'Chat with us',
  unread: (n: number) => (n === 1 ? '1 new message' : `${n} new messages`),
  chatTitle: 'Chat',
  minimise: 'Minimise the chat',
  end: 'End the conversation',
  endConfirm: 'End this conversation?',
  endYes: 'Yes, end it',
  endNo: 'No, keep it',
  messages: 'Messages',
  yourMessage: 'Your message',
  placeholder: 'Write a message…',
  send: 'Send',
  emoji: 'Add an emoji',
  emojis: 'Emojis',
  notSent: 'Not sent.',
  retry: 'Retry',
  you: 'You',
  team: 'The team',
  bot: 'Assistant',
  position: (n: number) => `You are number ${n} in the waiting list.`,
  replyIn: (d: string) => `The team typically replies in ${d}.`,
  withAgent: (name: string) => `${name} is answering you.`,
  snoozed: 'The team will come back to you here.',
  offline: 'Reconnecting…',
  nobodyOnline:
    'Nobody is online right now. Leave your email or mobile number and we will tell you when we answer.',
  email: 'Email',
  phone: 'Mobile number (+33…)',
  notifyMe: 'Notify me',
  notifyDone: 'Thank you: we will tell you when we answer.',
  notifyFailed: 'That did not work: check the address or the number.',
  closed: 'This conversation has ended.',
  surveyTitle: 'How did we do?',
  csat: 'How satisfied are you? (1: not at all, 5: very)',
  nps: 'How likely are you to recommend us? (0: not at all, 10: certainly)',
  comment: 'Anything to add? (optional)',
  surveySend: 'Send my answer',
  surveyThanks: 'Thank you for your answer!',
  newConversation: 'Start a new conversation',
  attachment: 'Attachment',
  offer: 'Offer',
  duration: (ms: number) => {
    const minutes = Math.max(1, Math.round(ms / 60_000));
    if (minutes < 60) return minutes === 1 ? 'a minute' : `${minutes} minutes`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return hours === 1 ? 'an hour' : `${hours} hours`;
    const days = Math.round(hours / 24);
    return days === 1 ? 'a day' : `${days} days`;
  },
};

export type Texts = typeof en;

const fr: Texts = {
  launcher: 'Écrivez-nous',
  unread: (n) => (n === 1 ? '1 nouveau message' : `${n} nouveaux messages`),
  chatTitle: 'Messagerie',
  minimise: 'Réduire la messagerie',
  end: 'Terminer la conversation',
  endConfirm: 'Terminer cette conversation ?',
  endYes: 'Oui, la terminer',
  endNo: 'Non, la garder',
  messages: 'Messages',
  yourMessage: 'Votre message',
  placeholder: 'Écrivez un message…',
  send: 'Envoyer',
  emoji: 'Ajouter un emoji',
  emojis: 'Emojis',
  notSent: 'Non envoyé.',
  retry: 'Réessayer',
  you: 'Vous',
  team: 'L’équipe',
  bot: 'Assistant',
  position: (n) => `Vous êtes en position ${n} dans la file d’attente.`,
  replyIn: (d) => `L’équipe répond en général en ${d}.`,
  withAgent: (name) => `${name} vous répond.`,
  snoozed: 'L’équipe reviendra vers vous ici.',
  offline: 'Reconnexion…',
  nobodyOnline:
    'Personne n’est en ligne pour le moment. Laissez votre e-mail ou votre numéro de mobile : nous vous préviendrons de notre réponse.',
  email: 'E-mail',
  phone: 'Numéro de mobile (+33…)',
  notifyMe: 'Me prévenir',
  notifyDone: 'Merci : nous vous préviendrons de notre réponse.',
  notifyFailed: 'Cela n’a pas fonctionné : vérifiez l’adresse ou le numéro.',
  closed: 'Cette conversation est terminée.',
  surveyTitle: 'Votre avis',
  csat: 'Êtes-vous satisfait ? (1 : pas du tout, 5 : très)',
  nps: 'Nous recommanderiez-vous ? (0 : pas du tout, 10 : certainement)',
  comment: 'Un commentaire ? (facultatif)',
  surveySend: 'Envoyer mon avis',
  surveyThanks: 'Merci pour votre avis !',
  newConversation: 'Nouvelle conversation',
  attachment: 'Pièce jointe',
  offer: 'Offre',
  duration: (ms) => {
    const minutes = Math.max(1, Math.round(ms / 60_000));
    if (minutes < 60) return minutes === 1 ? 'une minute' : `${minutes} minutes`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return hours === 1 ? 'une heure' : `${hours} heures`;
    const days = Math.round(hours / 24);
    return days === 1 ? 'un jour' : `${days} jours`;
  },
};

export const TEXTS: Readonly<Record<Lang, Texts>> = { en, fr };
