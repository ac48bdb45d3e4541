/** Data categories: every personal field belongs to exactly one. */
export const dataCategories = [
  'identity',
  'contact',
  'preferences',
  'commercial',
  'interactions',
  'payment',
  'health',
] as const;
export type DataCategory = (typeof dataCategories)[number];

export const lawfulBases = [
  'consent',
  'explicit_consent',
  'contract',
  'legal_obligation',
  'legitimate_interest',
] as const;
export type LawfulBasis = (typeof lawfulBases)[number];

export interface PurposeSeed {
  readonly key: string;
  readonly lawfulBasis: LawfulBasis;
  readonly categories: readonly DataCategory[];
  readonly retentionDays: number;
  readonly noticeVersion: string;
  readonly name: { readonly en: string; readonly es: string };
  readonly description: { readonly en: string; readonly es: string };
}

/** The purposes every workspace starts with. */
export const defaultPurposes: readonly PurposeSeed[] = [
  {
    key: 'loyalty_program',
    lawfulBasis: 'contract',
    categories: ['identity', 'contact', 'commercial'],
    retentionDays: 730,
    noticeVersion: '1',
    name: { en: 'Loyalty programme', es: 'Programa de fidelización' },
    description: {
      en: 'We keep your name, contact details and purchases to run your loyalty membership.',
      es: 'Guardamos tu nombre, tus datos de contacto y tus compras para gestionar tu membresía.',
    },
  },
  {
    key: 'personalized_offers',
    lawfulBasis: 'consent',
    categories: ['contact', 'preferences', 'commercial'],
    retentionDays: 730,
    noticeVersion: '1',
    name: { en: 'Personalised offers', es: 'Ofertas personalizadas' },
    description: {
      en: 'We use your contact details and preferences to send offers you asked for, when you want them.',
      es: 'Usamos tus datos de contacto y preferencias para enviarte las ofertas que pediste, cuando las quieres.',
    },
  },
  {
    key: 'customer_support',
    lawfulBasis: 'legitimate_interest',
    categories: ['identity', 'contact', 'interactions'],
    retentionDays: 365,
    noticeVersion: '1',
    name: { en: 'Customer support', es: 'Atención al cliente' },
    description: {
      en: 'We keep your name, contact details and our conversations to answer your requests.',
      es: 'Guardamos tu nombre, tus datos de contacto y nuestras conversaciones para atender tus solicitudes.',
    },
  },
  {
    key: 'payments',
    lawfulBasis: 'contract',
    categories: ['payment'],
    retentionDays: 1825,
    noticeVersion: '1',
    name: { en: 'Payments', es: 'Pagos' },
    description: {
      en: 'We keep a token of your payment card, never the number itself, to charge what you buy.',
      es: 'Guardamos un token de tu tarjeta, nunca el número, para cobrar lo que compras.',
    },
  },
  {
    key: 'health_services',
    lawfulBasis: 'explicit_consent',
    categories: ['health'],
    retentionDays: 365,
    noticeVersion: '1',
    name: { en: 'Health services', es: 'Servicios de salud' },
    description: {
      en: 'With your explicit consent, we keep the health information you give us to provide the health services you ask for.',
      es: 'Con tu consentimiento explícito, guardamos la información de salud que nos das para prestarte los servicios de salud que pides.',
    },
  },
];

/** Categories whose processing needs explicit consent (special categories of data). */
export const specialCategories: readonly DataCategory[] = ['health'];

export const noticeLanguages = ['en', 'es'] as const;
export type NoticeLanguage = (typeof noticeLanguages)[number];
