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
];
