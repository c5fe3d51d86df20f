/**
 * Element Web's config.json for one Matrix domain: locked to the project's homeserver, no
 * guests, no registration or password-reset screens (accounts are managed by the admin), and
 * nothing that talks to third parties unless asked for (no integration manager, bug reports or
 * analytics). Keys are the snake_case names current Element releases read.
 */
import { Problems, isDomainName, DOMAIN_RULE } from "../problems";

export interface FooterLink {
  readonly text: string;
  /** An https URL. */
  readonly url: string;
}

export interface IntegrationManager {
  /** e.g. `https://scalar.vector.im/` */
  readonly uiUrl: string;
  /** e.g. `https://scalar.vector.im/api` */
  readonly restUrl: string;
  /** @default [restUrl] */
  readonly widgetsUrls?: readonly string[];
}

export interface ElementConfigOptions {
  /** The Matrix server name (users are `@user:<domain>`). */
  readonly domain: string;
  /** Client-server API base URL. @default "https://matrix.<domain>" */
  readonly homeserverUrl?: string;
  /** Product name shown in the UI and e-mails. @default the domain */
  readonly brand?: string;
  /** Links in the footer of the login screens. @default none */
  readonly footerLinks?: readonly FooterLink[];
  /** ISO 3166-1 alpha-2 code preselected in phone number fields. @default "GB" */
  readonly countryCode?: string;
  /** New rooms federate by default. @default false */
  readonly defaultFederate?: boolean;
  /** Settings defaults merged over the built-in ones (e.g. `{ "UIFeature.passwordReset": true }`). @default none */
  readonly settingDefaults?: Readonly<Record<string, unknown>>;
  /** An integration manager (widgets, bridges, bots). @default none: integrations are disabled */
  readonly integrations?: IntegrationManager;
  /** A rageshake server for "Send logs". @default none: bug reports are disabled */
  readonly bugReportEndpointUrl?: string;
  /** Default theme. @default "light" */
  readonly defaultTheme?: string;
}

/** ISO 3166-1 alpha-2: the officially assigned codes. */
export const ISO_3166_ALPHA2 = new Set(
  (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
    "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
    "GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
    "KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT " +
    "MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
    "SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG " +
    "UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
  ).split(" "),
);

/** The account-management screens stay hidden: the admin creates and removes accounts. */
export const DEFAULT_SETTING_DEFAULTS: Readonly<Record<string, unknown>> = {
  breadcrumbs: true,
  "UIFeature.feedback": false,
  "UIFeature.advancedSettings": false,
  "UIFeature.shareQrCode": false,
  "UIFeature.shareSocial": false,
  "UIFeature.registration": false,
  "UIFeature.passwordReset": false,
  "UIFeature.deactivate": false,
};

function isUrl(value: string, protocols: readonly string[]): boolean {
  try {
    const url = new URL(value);
    return protocols.includes(url.protocol) && url.hostname !== "" && !/\s/.test(value);
  } catch {
    return false;
  }
}

export const isHttpsUrl = (value: string): boolean => isUrl(value, ["https:"]);

/** Records every problem with the options under `prefix` (e.g. `element.`), so constructs can report them with their own. */
export function validateElementConfigOptions(options: ElementConfigOptions, problems: Problems, prefix = ""): void {
  problems.check(isDomainName(options.domain ?? ""), `${prefix}domain`, `must be ${DOMAIN_RULE}, got ${JSON.stringify(options.domain)}`);
  if (options.homeserverUrl !== undefined) {
    problems.check(isHttpsUrl(options.homeserverUrl), `${prefix}homeserverUrl`, `must be an https URL such as https://matrix.example.com, got ${JSON.stringify(options.homeserverUrl)}`);
  }
  if (options.brand !== undefined) {
    problems.check(options.brand.trim() !== "", `${prefix}brand`, "must be a non-empty name");
  }
  if (options.countryCode !== undefined) {
    problems.check(
      ISO_3166_ALPHA2.has(options.countryCode),
      `${prefix}countryCode`,
      `must be an ISO 3166-1 alpha-2 country code in upper case such as "GB" or "DE", got ${JSON.stringify(options.countryCode)}`,
    );
  }
  (options.footerLinks ?? []).forEach((link, i) => {
    problems.check((link.text ?? "").trim() !== "", `${prefix}footerLinks[${i}].text`, "must be non-empty link text");
    problems.check(isHttpsUrl(link.url ?? ""), `${prefix}footerLinks[${i}].url`, `must be an https URL such as https://example.com/privacy, got ${JSON.stringify(link.url)}`);
  });
  if (options.integrations) {
    const { uiUrl, restUrl, widgetsUrls } = options.integrations;
    problems.check(isHttpsUrl(uiUrl), `${prefix}integrations.uiUrl`, `must be an https URL, got ${JSON.stringify(uiUrl)}`);
    problems.check(isHttpsUrl(restUrl), `${prefix}integrations.restUrl`, `must be an https URL, got ${JSON.stringify(restUrl)}`);
    (widgetsUrls ?? []).forEach((u, i) =>
      problems.check(isHttpsUrl(u), `${prefix}integrations.widgetsUrls[${i}]`, `must be an https URL, got ${JSON.stringify(u)}`),
    );
  }
  if (options.bugReportEndpointUrl !== undefined) {
    problems.check(isHttpsUrl(options.bugReportEndpointUrl), `${prefix}bugReportEndpointUrl`, `must be an https URL, got ${JSON.stringify(options.bugReportEndpointUrl)}`);
  }
}

/** Element's config.json as an object. @throws ValidationError naming every bad option */
export function elementConfig(options: ElementConfigOptions): Record<string, unknown> {
  const problems = new Problems();
  validateElementConfigOptions(options, problems);
  problems.throwIfAny("invalid Element configuration");

  const { domain } = options;
  const footerLinks = (options.footerLinks ?? []).map((l) => ({ text: l.text, url: l.url }));
  const integrations = options.integrations;
  return {
    default_server_config: {
      "m.homeserver": { base_url: options.homeserverUrl ?? `https://matrix.${domain}`, server_name: domain },
    },
    disable_custom_urls: true,
    disable_guests: true,
    disable_login_language_selector: false,
    disable_3pid_login: true,
    brand: options.brand ?? domain,
    ...(footerLinks.length > 0 ? { branding: { auth_footer_links: footerLinks } } : {}),
    // Element's built-in default is a third-party integration manager; empty URLs disable it.
    integrations_ui_url: integrations?.uiUrl ?? "",
    integrations_rest_url: integrations?.restUrl ?? "",
    integrations_widgets_urls: integrations ? [...(integrations.widgetsUrls ?? [integrations.restUrl])] : [],
    ...(options.bugReportEndpointUrl ? { bug_report_endpoint_url: options.bugReportEndpointUrl } : {}),
    default_country_code: options.countryCode ?? "GB",
    show_labs_settings: false,
    default_federate: options.defaultFederate ?? false,
    default_theme: options.defaultTheme ?? "light",
    room_directory: { servers: [domain] },
    setting_defaults: { ...DEFAULT_SETTING_DEFAULTS, ...options.settingDefaults },
  };
}

/** config.json text. */
export function renderElementConfig(options: ElementConfigOptions): string {
  return `${JSON.stringify(elementConfig(options), null, 2)}\n`;
}
