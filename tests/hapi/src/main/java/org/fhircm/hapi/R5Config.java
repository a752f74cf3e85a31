package org.fhircm.hapi;

import ca.uhn.fhir.jpa.config.r5.JpaR5Config;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;

/** A FHIR R5 (5.0.0) server: HAPI's R5 DAOs and providers over the common storage. */
@Configuration
@Import({JpaR5Config.class, ServerConfig.class})
public class R5Config {}
